// thread-growth: the thread count keeps rising across the history: threads
// are started and never finish.
import { formatDuration } from '../../format.js';
import type { Observation, ThreadInfo, ThreadRole } from '../../model/snapshot.js';
import { type CheckResult, found, OK, processSubject, type Thresholds, undecided } from '../detector.js';
import { type Trend, trendOf } from '../trend.js';

export const id = 'thread-growth';
export const MIN_SAMPLES = 8;
export const MIN_SPAN_MS = 8_000;
export const MIN_NEW_THREADS = 8;
export const MIN_RISING_FRACTION = 0.7;

/**
 * A runtime's own threads, bounded by its configuration (Node starts its
 * libuv pool on first use, so the count rises once): never a thread leak.
 * Worker threads are the program's and count.
 */
export const BOUNDED_ROLES: ReadonlySet<ThreadRole> = new Set(['main', 'libuv-threadpool', 'v8-platform', 'v8-delayed-tasks', 'inspector-signal']);

const bounded = (t: ThreadInfo) => t.role !== undefined && BOUNDED_ROLES.has(t.role);

/** The start routine most of the threads share, if one does (a runtime's bounded threads aside). */
export function commonStartRoutine(o: Observation): { routine: string; count: number } | null {
  const counts = new Map<string, number>();
  for (const t of o.threads) if (t.start_routine && !bounded(t)) counts.set(t.start_routine, (counts.get(t.start_routine) ?? 0) + 1);
  let best: { routine: string; count: number } | null = null;
  for (const [routine, count] of counts) if (!best || count > best.count) best = { routine, count };
  return best;
}

/** `added`: the threads started and not finished, a runtime's own bounded threads not counted. */
export function summary(trend: Trend, added: number = trend.last - trend.first): string {
  const runtime = added < trend.last - trend.first ? ", the runtime's own pools aside" : '';
  return `${added} threads started in ${formatDuration(trend.spanMs)} have not finished (${trend.first} → ${trend.last}${runtime})`;
}

export function message(trend: Trend, common: { routine: string; count: number } | null): string {
  const where = common ? ` ${common.count} of the threads run ${common.routine}.` : '';
  return (
    `The thread count rose from ${trend.first} to ${trend.last} over ${formatDuration(trend.spanMs)} and has not come down: ` +
    `threads are started and never finish.${where}`
  );
}

export function remedy(common: { routine: string } | null): string {
  return `Join or stop the threads${common ? ` started at ${common.routine}` : ''}, or run that work on a bounded pool.`;
}

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  const trend = trendOf(o.history.map((h) => ({ t_ms: h.t_ms, value: h.threads })));
  if (!trend || trend.samples < MIN_SAMPLES || trend.spanMs < MIN_SPAN_MS)
    return undecided(`needs ${MIN_SPAN_MS / 1000} s of history (has ${trend ? Math.floor(trend.spanMs / 1000) : 0} s)`);
  // At most every bounded thread there is now started within the window.
  const added = trend.last - trend.first - Math.max(0, o.threads.filter(bounded).length - 1);
  if (added < MIN_NEW_THREADS || trend.risingFraction < MIN_RISING_FRACTION || trend.last < trend.max) return OK;
  const common = commonStartRoutine(o);
  return found([
    {
      id,
      severity: 'warn',
      summary: summary(trend, added),
      message: message(trend, common),
      subject: processSubject(o),
      value: added,
      unit: 'count',
      remedy: remedy(common),
    },
  ]);
}
