// v8-heap-growth: a Node process's JavaScript heap has kept growing in a
// recent window, to a level it never reached before: objects are kept that
// the program no longer needs (a module-level array or map that only grows,
// listeners never removed). V8's heap is live data, not allocator
// retention; its garbage collections are a sawtooth the judge looks through
// (growth.ts). Names the heap space that grew most.
import { formatBytes, formatDuration } from '../../format.js';
import type { Cause, Observation } from '../../model/snapshot.js';
import { growthStacks } from '../../model/stacks.js';
import { type CheckResult, found, OK, processSubject, type Thresholds, undecided } from '../detector.js';
import { limitSentence } from '../limit.js';
import { type Growth, type GrowthRule, judgeGrowth, median, pendingReason } from '../growth.js';
import { RULE as HEAP_RULE, remedyFor, stacksSentence } from './heap-growth.js';

export const id = 'v8-heap-growth';
export const cause: Cause = 'live-data-growing';
/** Live data either way: the same rule as heap-growth's (8 MiB, and 5% of where a window started). */
export const RULE: GrowthRule = HEAP_RULE;

type Growing = Extract<Growth, { status: 'growing' }>;

/** The space whose used bytes grew most over the window, from the median of its first and last twelfths. */
export function grownSpace(o: Observation, g: Growing): { name: string; added: number } | null {
  const history = o.node?.v8_heap_history ?? [];
  const names = o.node?.v8_heap_spaces ?? [];
  const end = history.at(-1)?.t_ms ?? 0;
  const slice = (from: number, to: number) => history.filter((h) => h.t_ms > from && h.t_ms <= to);
  const first = slice(end - g.windowMs, end - (g.windowMs * 11) / 12);
  const last = slice(end - g.windowMs / 12, end);
  if (first.length === 0 || last.length === 0) return null;
  let best: { name: string; added: number } | null = null;
  names.forEach((name, i) => {
    const added = median(last.map((h) => h.spaces[i] ?? 0)) - median(first.map((h) => h.spaces[i] ?? 0));
    if (!best || added > best.added) best = { name, added };
  });
  return best;
}

export function summary(g: Growing, space: { name: string } | null): string {
  return (
    `${formatBytes(g.added)} of JavaScript heap added in the last ${formatDuration(g.windowMs)} and still rising (${formatBytes(g.ratePerS)}/s)` +
    (space ? `, most of it in ${space.name}` : '')
  );
}

export function message(g: Growing, space: { name: string; added: number } | null): string {
  return (
    `V8's used heap rose from ${formatBytes(g.from)} to ${formatBytes(g.to)} over the last ${formatDuration(g.windowMs)}, in every quarter of it and through ` +
    `its garbage collections, to a level not reached before${space ? `; ${space.name} grew by ${formatBytes(space.added)}` : ''}. ` +
    'Objects that are still reachable keep piling up: a real leak or an unbounded cache in JavaScript, not allocator retention.'
  );
}

export const REMEDY =
  'Take two heap snapshots a few minutes apart (node --inspect and the Memory tab, or v8.writeHeapSnapshot()) and compare them: ' +
  'the objects whose count grows, and what retains them — often a module-level array, map or cache that is never trimmed, or listeners never removed.';

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  const node = o.node;
  if (!node) return OK;
  const history = node.v8_heap_history;
  if (!history) return undecided('needs the bridge to record the JavaScript heap (a bridge from before it did)');
  const g = judgeGrowth(
    history.map((h) => ({ t_ms: h.t_ms, value: h.used_bytes })),
    RULE,
  );
  if (g.status === 'pending') return undecided(pendingReason(g));
  if (g.status === 'flat') return OK;
  const space = grownSpace(o, g);
  const nowMs = history[history.length - 1]?.t_ms ?? Date.parse(o.taken_at);
  const { growth: byStack, named } = growthStacks(o.heap?.source === 'v8-sampling' ? o.heap : undefined, nowMs, g.windowMs);
  return found([
    {
      id,
      severity: 'error',
      summary: summary(g, space),
      message: message(g, space) + stacksSentence(byStack) + limitSentence(o.process, g.ratePerS),
      subject: processSubject(o),
      value: Math.round(g.ratePerS),
      unit: 'bytes_per_s',
      remedy: byStack.length ? remedyFor(byStack) : REMEDY,
      ...(named.length ? { stacks: named } : {}),
    },
  ]);
}
