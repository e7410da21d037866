// starvation: a task has waited over a second to be polled while its
// runtime polled others: woken (or spawned) and passed over. A scheduler
// that favours some tasks, or a queue that others keep refilling. Tasks that
// wait as long as the idle threshold are idle-forever's (stuck).
import { formatDuration } from '../../format.js';
import type { Cause, Finding, Observation } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds } from '../detector.js';
import { origin, siteSubject } from '../task-wording.js';

export const id = 'starvation';
/** About the scheduler, not memory: it decides no verdict. */
export const cause: Cause | null = null;
/** A task waiting this long to be polled, while others are, is starved. */
export const STARVED_MS = 1000;

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  if (!o.tasks.tracked) return OK;
  const lastPollAgo = o.tasks.last_poll_ms_ago;
  if (lastPollAgo === undefined || lastPollAgo === null) return OK;
  const findings: Finding[] = o.tasks.sites
    .filter((site) => {
      const waited = site.scheduled_longest_ms ?? 0;
      // Someone was polled after this task became ready, and it is not stuck for good.
      return waited >= STARVED_MS && lastPollAgo < waited && (site.scheduled_over_threshold ?? 0) === 0;
    })
    .map((site) => {
      const waited = site.scheduled_longest_ms as number;
      return {
        id,
        severity: 'warn',
        summary: `a ${site.kind} ${origin(site.kind)} ${site.site} has waited ${formatDuration(waited)} to be polled while others ran`,
        message:
          `${site.scheduled} ${site.scheduled === 1 ? 'task is' : 'tasks are'} ready to run at ${site.site}; the longest has waited ${formatDuration(waited)} ` +
          `to be polled, and the runtime polled another task ${formatDuration(lastPollAgo)} ago. It is being passed over.`,
        subject: siteSubject(site),
        value: waited,
        unit: 'ms',
        remedy:
          `Find what keeps the runtime from polling the tasks ${origin(site.kind)} ${site.site}: a queue others keep refilling first, ` +
          'a task that re-wakes itself in a loop, or a priority that never lets it through; yield in busy tasks so the queue turns.',
      } satisfies Finding;
    });
  return found(findings);
}
