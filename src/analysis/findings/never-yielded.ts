// never-yielded: one poll that kept its thread for a second or more, in the
// last minute or still running. On an event loop nothing else runs
// meanwhile: timers fire late, requests wait. One slow poll at start-up is
// not reported for the life of the process.
import { formatCount, formatDuration, plural } from '../../format.js';
import type { Cause, Finding, Observation, TaskSite } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds } from '../detector.js';
import { origin, siteSubject } from '../task-wording.js';

export const id = 'never-yielded';
export const cause: Cause | null = null;
/** A single poll at least this long blocks the loop. */
export const NEVER_YIELDED_MS = 1000;

function blockingNow(site: TaskSite): boolean {
  return site.running_longest_ms >= NEVER_YIELDED_MS;
}

/** The slow poll to report: the recent one (agents that say), else the longest ever (older recordings). */
function slowPollMs(site: TaskSite): number | null {
  if (site.recent_slow_poll_ms !== undefined) return site.recent_slow_poll_ms;
  return site.longest_poll_ms;
}

export function summary(site: TaskSite): string {
  const ago = site.recent_slow_poll_ms_ago ? `, ${formatDuration(site.recent_slow_poll_ms_ago)} ago` : '';
  return blockingNow(site)
    ? `a ${site.kind} ${origin(site.kind)} ${site.site} has been running for ${formatDuration(site.running_longest_ms)} without yielding`
    : `a poll of a ${site.kind} ${origin(site.kind)} ${site.site} ran for ${formatDuration(slowPollMs(site) ?? 0)} without yielding${ago}`;
}

export function message(site: TaskSite): string {
  const now = blockingNow(site)
    ? ` It is still running: its current poll started ${formatDuration(site.running_longest_ms)} ago.`
    : '';
  return (
    `The longest poll of a ${site.kind} ${origin(site.kind)} ${site.site} kept its thread for ${formatDuration(site.longest_poll_ms)} ` +
    `(${formatCount(site.polls)} ${plural(site.polls, 'poll', 'polls')} in all): nothing else on that thread's event loop could run meanwhile.${now}`
  );
}

export function remedy(site: TaskSite): string {
  return `Move blocking or CPU-heavy work at ${site.site} off the event loop (spawn_blocking, a worker thread) or yield inside its long loops.`;
}

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  if (!o.tasks.tracked) return OK;
  const findings: Finding[] = o.tasks.sites
    .filter((site) => blockingNow(site) || (slowPollMs(site) ?? 0) >= NEVER_YIELDED_MS)
    .map((site) => ({
      id,
      severity: blockingNow(site) ? 'error' : 'warn',
      summary: summary(site),
      message: message(site),
      subject: siteSubject(site),
      value: Math.max(slowPollMs(site) ?? 0, site.running_longest_ms),
      unit: 'ms',
      remedy: remedy(site),
    }));
  return found(findings);
}
