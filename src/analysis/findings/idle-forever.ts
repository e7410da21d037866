// idle-forever: live tasks that have made no progress for at least the idle
// threshold, grouped by spawn site: idle since their last poll, or waiting
// to be polled (spawned or woken) that long — a task spawned and never
// polled is stuck too, whatever state the runtime left it in. One or two
// such tasks are normal (an accept loop, a signal handler); many at one site
// are the leak of a constructor that spawns a task nobody cancels.
import { formatBytes, formatCount, formatDuration, plural } from '../../format.js';
import type { Cause, Finding, Observation, Severity, TaskSite } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds, undecided } from '../detector.js';
import { countOf, ender, isPolled, nounOf, notYet, origin, siteSubject, waiting } from '../task-wording.js';

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

/** Tasks of the site that made no progress for the threshold: idle that long, or waiting that long to be polled. */
export function stuckOf(site: TaskSite): number {
  return site.idle_over_threshold + (site.scheduled_over_threshold ?? 0);
}

export function summary(site: TaskSite, thresholdMs: number): string {
  const n = stuckOf(site);
  const never = isPolled(site.kind) ? (site.never_polled ?? 0) : 0;
  const subject = `${countOf(site.kind, n)} ${origin(site.kind)} ${site.site}`;
  if (never >= n) return `${subject} ${plural(n, 'has', 'have')} never been polled in over ${formatDuration(thresholdMs)}`;
  if (n > site.idle_over_threshold || never > 0)
    return `${subject} ${plural(n, 'has', 'have')} made no progress for over ${formatDuration(thresholdMs)} (${formatCount(never)} never polled)`;
  return `${subject} ${plural(n, 'has', 'have')} been ${waiting(site.kind)} for over ${formatDuration(thresholdMs)}`;
}

export function message(site: TaskSite, thresholdMs: number): string {
  const held = site.live_bytes > 0 ? ` Memory allocated while they ran and still live: ${formatBytes(site.live_bytes)}.` : '';
  const never = isPolled(site.kind) ? (site.never_polled ?? 0) : 0;
  const waitingToRun = site.scheduled_over_threshold ?? 0;
  const how =
    never > 0 || waitingToRun > 0
      ? ` Of them, ${formatCount(site.idle_over_threshold)} ${plural(site.idle_over_threshold, 'is', 'are')} idle since ${plural(site.idle_over_threshold, 'its', 'their')} last poll, ` +
        `${formatCount(waitingToRun)} ${plural(waitingToRun, 'has', 'have')} waited that long to be polled, and ${formatCount(never)} ${plural(never, 'was', 'were')} never polled at all.`
      : '';
  return (
    `${formatCount(stuckOf(site))} of the ${formatCount(site.live)} live ${nounOf(site.kind, site.live)} ${origin(site.kind)} ${site.site} ` +
    `${plural(stuckOf(site), 'has', 'have')} not ${notYet(site.kind)} for over ${formatDuration(thresholdMs)} ` +
    `(the oldest for ${formatDuration(site.oldest_idle_ms)}); ${formatCount(site.spawned)} ${plural(site.spawned, 'was', 'were')} ${origin(site.kind).replace(' at', '')} there ` +
    `and ${formatCount(site.completed)} finished.${how}${held} If nothing will ever ${ender(site.kind)} them, they are leaked.`
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
    .filter((site) => stuckOf(site) > 0)
    .map((site) => ({
      id,
      severity: severityFor(stuckOf(site)),
      summary: summary(site, thresholds.idleMs),
      message: message(site, thresholds.idleMs),
      subject: siteSubject(site),
      value: stuckOf(site),
      unit: 'count',
      remedy: remedy(site),
    }));
  return found(findings);
}
