// heap-growth: live bytes (allocated and not freed, from the ledger) have
// kept rising in a recent window and stand at a level they never reached
// before. That is a real leak or an unbounded cache, whatever the allocator
// does. A start-up ramp that levelled off, a cache's sawtooth and a reload's
// step are not growth (see growth.ts).
import { formatBytes, formatDuration } from '../../format.js';
import type { Cause, Observation, ThreadInfo } from '../../model/snapshot.js';
import { type CheckResult, found, OK, processSubject, type Thresholds, threadLabel, undecided } from '../detector.js';
import { growthStacks, type StackGrowth } from '../../model/stacks.js';
import { limitSentence } from '../limit.js';
import { type Growth, type GrowthRule, judgeGrowth, pendingReason } from '../growth.js';

export const id = 'heap-growth';
export const cause: Cause = 'live-data-growing';
/** Growth smaller than this over a window is noise, however steady. */
export const MIN_GROWTH_BYTES = 8 * 1024 * 1024;
/** Growth relative to where the window started. */
export const MIN_GROWTH_FRACTION = 0.05;
export const RULE: GrowthRule = { minGrowth: MIN_GROWTH_BYTES, minFraction: MIN_GROWTH_FRACTION };

type Growing = Extract<Growth, { status: 'growing' }>;

export function summary(g: Growing): string {
  return `${formatBytes(g.added)} of live heap added in the last ${formatDuration(g.windowMs)} and still rising (${formatBytes(g.ratePerS)}/s)`;
}

export function message(g: Growing, topThread: ThreadInfo | undefined): string {
  const where = topThread?.heap
    ? ` The thread holding the most live blocks is ${threadLabel(topThread)} (${formatBytes(topThread.heap.live_bytes)}).`
    : '';
  return (
    `Live bytes (allocated and not freed) rose from ${formatBytes(g.from)} to ${formatBytes(g.to)} over the last ${formatDuration(g.windowMs)}, ` +
    `in every quarter of it, to a level not reached before. This is a real leak or an unbounded cache, not allocator retention.${where}`
  );
}

export const REMEDY =
  "Find what keeps the new blocks: compare snapshots taken minutes apart ('leakscope snapshot <pid> --json'), " +
  'see which threads’ live bytes grow, and bound or release that data.';

/** Where the agent sampled stacks: the code the growth was allocated by, and what to do about it. */
export function stacksSentence(growth: readonly StackGrowth[]): string {
  const [top, next] = growth;
  if (!top) return '';
  const percent = (g: StackGrowth) => `${Math.round(g.share * 100)}%`;
  const second = next && top.share < 0.8 ? `, and ${percent(next)} from ${next.stack.site}` : '';
  return ` ${percent(top)} of the growth comes from ${top.stack.site}${second}.`;
}

export function remedyFor(growth: readonly StackGrowth[]): string {
  const top = growth[0];
  if (!top) return REMEDY;
  return (
    `Look at what ${top.stack.site.split(' ← ')[0]} allocates and who keeps it: bound or release that data. ` +
    "'leakscope profile <pid> --out heap.pb.gz' writes the stacks for 'go tool pprof'; two profiles minutes apart compare with -diff_base."
  );
}

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  if (o.allocator.live_bytes === null) return undecided('needs the agent: live bytes come from its ledger');
  const points = o.history.flatMap((h) => (h.live_bytes === null ? [] : [{ t_ms: h.t_ms, value: h.live_bytes }]));
  const g = judgeGrowth(points, RULE);
  if (g.status === 'pending') return undecided(pendingReason(g));
  if (g.status === 'flat') return OK;
  const topThread = [...o.threads]
    .filter((t) => t.heap && !t.agent_thread)
    .sort((a, b) => (b.heap?.live_bytes ?? 0) - (a.heap?.live_bytes ?? 0))[0];
  const nowMs = o.history[o.history.length - 1]?.t_ms ?? Date.parse(o.taken_at);
  const { growth: byStack, named } = growthStacks(o.heap, nowMs, g.windowMs);
  return found([
    {
      id,
      severity: 'error',
      summary: summary(g),
      message: message(g, topThread) + stacksSentence(byStack) + limitSentence(o.process, g.ratePerS),
      subject: processSubject(o),
      value: Math.round(g.ratePerS),
      unit: 'bytes_per_s',
      remedy: remedyFor(byStack),
      ...(named.length ? { stacks: named } : {}),
    },
  ]);
}
