// thread-growth: the thread count has kept rising in a recent window, to a
// level it never reached before: threads are started and never finish. A pool
// started once, at start-up or later, is a step, not growth (see growth.ts).
import { formatDuration } from '../../format.js';
import type { Cause, Observation, ThreadInfo, ThreadRole } from '../../model/snapshot.js';
import { type CheckResult, found, OK, processSubject, type Thresholds, undecided } from '../detector.js';
import { type Growth, judgeGrowth, pendingReason } from '../growth.js';

export const id = 'thread-growth';
export const cause: Cause = 'threads-leaking';
export const MIN_NEW_THREADS = 8;

type Growing = Extract<Growth, { status: 'growing' }>;

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
export function summary(g: Growing, added: number = g.added): string {
  const runtime = added < g.added ? ", the runtime's own pools aside" : '';
  return `${added} threads started in the last ${formatDuration(g.windowMs)} have not finished (${Math.round(g.from)} → ${Math.round(g.to)}${runtime})`;
}

export function message(g: Growing, common: { routine: string; count: number } | null): string {
  const where = common ? ` ${common.count} of the threads run ${common.routine}.` : '';
  return (
    `The thread count rose from ${Math.round(g.from)} to ${Math.round(g.to)} over the last ${formatDuration(g.windowMs)}, in every quarter of it, and has not come down: ` +
    `threads are started and never finish.${where}`
  );
}

export function remedy(common: { routine: string } | null): string {
  return `Join or stop the threads${common ? ` started at ${common.routine}` : ''}, or run that work on a bounded pool.`;
}

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  const g = judgeGrowth(
    o.history.map((h) => ({ t_ms: h.t_ms, value: h.threads })),
    { minGrowth: MIN_NEW_THREADS, minFraction: 0 },
  );
  if (g.status === 'pending') return undecided(pendingReason(g));
  if (g.status === 'flat') return OK;
  // At most every bounded thread there is now started within the window.
  const added = Math.round(g.added) - Math.max(0, o.threads.filter(bounded).length - 1);
  if (added < MIN_NEW_THREADS) return OK;
  const common = commonStartRoutine(o);
  return found([
    {
      id,
      severity: 'warn',
      summary: summary(g, added),
      message: message(g, common),
      subject: processSubject(o),
      value: added,
      unit: 'count',
      remedy: remedy(common),
    },
  ]);
}
