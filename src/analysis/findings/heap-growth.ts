// heap-growth: live bytes (allocated and not freed, from the ledger) keep
// rising across the history. That is a real leak or an unbounded cache,
// whatever the allocator does.
import { formatBytes, formatDuration } from '../../format.js';
import type { Observation, ThreadInfo } from '../../model/snapshot.js';
import { type CheckResult, found, OK, processSubject, type Thresholds, threadLabel, undecided } from '../detector.js';
import { type Trend, trendOf } from '../trend.js';

export const id = 'heap-growth';
export const MIN_SAMPLES = 8;
export const MIN_SPAN_MS = 8_000;
/** Growth smaller than this is noise, however steady. */
export const MIN_GROWTH_BYTES = 8 * 1024 * 1024;
/** Growth relative to where the window started. */
export const MIN_GROWTH_FRACTION = 0.1;
/** Share of steps that went up or stayed. */
export const MIN_RISING_FRACTION = 0.7;

export function summary(trend: Trend): string {
  return `${formatBytes(trend.last - trend.first)} of live heap added in ${formatDuration(trend.spanMs)} and still rising (${formatBytes(trend.slopePerS)}/s)`;
}

export function message(trend: Trend, topThread: ThreadInfo | undefined): string {
  const where = topThread?.heap
    ? ` The thread holding the most live blocks is ${threadLabel(topThread)} (${formatBytes(topThread.heap.live_bytes)}).`
    : '';
  return (
    `Live bytes (allocated and not freed) rose from ${formatBytes(trend.first)} to ${formatBytes(trend.last)} over ${formatDuration(trend.spanMs)}, ` +
    `up in ${Math.round(trend.risingFraction * 100)}% of samples. This is a real leak or an unbounded cache, not allocator retention.${where}`
  );
}

export const REMEDY =
  "Find what keeps the new blocks: compare snapshots taken minutes apart ('leakscope snapshot <pid> --json'), " +
  'see which threads’ live bytes grow, and bound or release that data.';

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  if (o.allocator.live_bytes === null) return undecided('needs the agent: live bytes come from its ledger');
  const points = o.history.flatMap((h) => (h.live_bytes === null ? [] : [{ t_ms: h.t_ms, value: h.live_bytes }]));
  const trend = trendOf(points);
  if (!trend || trend.samples < MIN_SAMPLES || trend.spanMs < MIN_SPAN_MS)
    return undecided(`needs ${MIN_SPAN_MS / 1000} s of history (has ${trend ? Math.floor(trend.spanMs / 1000) : 0} s)`);
  const growth = trend.last - trend.first;
  const rising =
    growth >= MIN_GROWTH_BYTES &&
    growth >= MIN_GROWTH_FRACTION * Math.max(trend.first, 1) &&
    trend.risingFraction >= MIN_RISING_FRACTION &&
    trend.slopePerS > 0;
  if (!rising) return OK;
  const topThread = [...o.threads]
    .filter((t) => t.heap && !t.agent_thread)
    .sort((a, b) => (b.heap?.live_bytes ?? 0) - (a.heap?.live_bytes ?? 0))[0];
  return found([
    {
      id,
      severity: 'error',
      summary: summary(trend),
      message: message(trend, topThread),
      subject: processSubject(o),
      value: Math.round(trend.slopePerS),
      unit: 'bytes_per_s',
      remedy: REMEDY,
    },
  ]);
}
