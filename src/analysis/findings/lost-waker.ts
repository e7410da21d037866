// lost-waker: an idle task that no waker can reach any more will never be
// polled again. Judged only for runtimes that report waker clones and drops
// (tasks.wakers_tracked_kinds), as tokio-console does.
import { plural } from '../../format.js';
import type { Cause, Finding, Observation, TaskSite } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds, undecided } from '../detector.js';
import { countOf, origin, siteSubject } from '../task-wording.js';

export const id = 'lost-waker';
export const cause: Cause = 'tasks-leaking';

export function summary(site: TaskSite): string {
  return `${countOf(site.kind, site.no_waker)} ${origin(site.kind)} ${site.site} can never be woken: no waker is left`;
}

export function message(site: TaskSite): string {
  return (
    `${countOf(site.kind, site.no_waker)} ${origin(site.kind)} ${site.site} ${plural(site.no_waker, 'is idle and has', 'are idle and have')} no live waker: ` +
    `${plural(site.no_waker, 'whatever it waits for dropped the waker or never kept one, so nothing will poll it again. It stays', 'whatever they wait for dropped the waker or never kept one, so nothing will poll them again. They stay')} in memory until the runtime shuts down.`
  );
}

export function remedy(site: TaskSite): string {
  return `Make the code polled at ${site.site} keep the waker it is given (a clone of cx.waker()) where the awaited event is raised, and wake it before dropping it.`;
}

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  const tasks = o.tasks;
  if (!tasks.tracked) return OK;
  const judged = new Set(tasks.wakers_tracked_kinds);
  if (judged.size === 0) return undecided('the runtime does not report wakers');
  const findings: Finding[] = tasks.sites
    .filter((site) => site.no_waker > 0 && judged.has(site.kind))
    .map((site) => ({
      id,
      severity: 'warn',
      summary: summary(site),
      message: message(site),
      subject: siteSubject(site),
      value: site.no_waker,
      unit: 'count',
      remedy: remedy(site),
    }));
  return found(findings);
}
