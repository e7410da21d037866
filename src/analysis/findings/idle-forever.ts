// idle-forever: live tasks that nothing has polled for at least the idle
// threshold, grouped by spawn site. One or two such tasks are normal (an
// accept loop, a signal handler); many at one site are the leak of a
// constructor that spawns a task nobody cancels.
import { formatBytes, formatCount, formatDuration, plural } from '../../format.js';
import type { Cause, Finding, Observation, Severity, TaskSite } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds, undecided } from '../detector.js';
import { countOf, ender, nounOf, notYet, origin, siteSubject, waiting } from '../task-wording.js';

export const id = 'idle-forever';
export const cause: Cause = 'tasks-leaking';
/** A few tasks idle is information; from a warning on they are a leak. */
export const verdictFrom: Severity = 'warn';
/** At a site with this many idle-forever tasks the finding is a warning; below, information. */
export const WARN_MIN_TASKS = 10;
export const ERROR_MIN_TASKS = 1000;

export function severityFor(count: number): Severity {
  return count >= ERROR_MIN_TASKS ? 'error' : count >= WARN_MIN_TASKS ? 'warn' : 'info';
}

export function summary(site: TaskSite, thresholdMs: number): string {
  const n = site.idle_over_threshold;
  return `${countOf(site.kind, n)} ${origin(site.kind)} ${site.site} ${plural(n, 'has', 'have')} been ${waiting(site.kind)} for over ${formatDuration(thresholdMs)}`;
}

export function message(site: TaskSite, thresholdMs: number): string {
  const held = site.live_bytes > 0 ? ` Memory allocated while they ran and still live: ${formatBytes(site.live_bytes)}.` : '';
  return (
    `${formatCount(site.idle_over_threshold)} of the ${formatCount(site.live)} live ${nounOf(site.kind, site.live)} ${origin(site.kind)} ${site.site} ` +
    `${plural(site.idle_over_threshold, 'has', 'have')} not ${notYet(site.kind)} for over ${formatDuration(thresholdMs)} ` +
    `(the oldest for ${formatDuration(site.oldest_idle_ms)}); ${formatCount(site.spawned)} ${plural(site.spawned, 'was', 'were')} ${origin(site.kind).replace(' at', '')} there ` +
    `and ${formatCount(site.completed)} finished.${held} If nothing will ever ${ender(site.kind)} them, they are leaked.`
  );
}

export function remedy(site: TaskSite): string {
  return (
    `Find the owner of the tasks ${origin(site.kind)} ${site.site}: cancel them (abort the handle) when the owner is dropped, ` +
    `and do not spawn them from a constructor or default value that may be thrown away.`
  );
}

export function check(o: Observation, thresholds: Thresholds): CheckResult {
  const tasks = o.tasks;
  if (!tasks.tracked) return OK;
  if (tasks.idle_threshold_ms !== thresholds.idleMs)
    return undecided(
      `the snapshot counted idle tasks at ${formatDuration(tasks.idle_threshold_ms)}; take it again with --idle-threshold ${formatDuration(thresholds.idleMs)}`,
    );
  const findings: Finding[] = tasks.sites
    .filter((site) => site.idle_over_threshold > 0)
    .map((site) => ({
      id,
      severity: severityFor(site.idle_over_threshold),
      summary: summary(site, thresholds.idleMs),
      message: message(site, thresholds.idleMs),
      subject: siteSubject(site),
      value: site.idle_over_threshold,
      unit: 'count',
      remedy: remedy(site),
    }));
  return found(findings);
}
