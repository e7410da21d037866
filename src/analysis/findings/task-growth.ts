// task-growth: a spawn site whose live task count has kept rising in a
// recent window, to a level it never reached before: tasks are spawned faster
// than they finish. A busy site whose count goes up and down, one that
// levelled off, and one sampled promise's weight are not growth (growth.ts).
import { formatDuration } from '../../format.js';
import type { Cause, Finding, Observation, TaskSite } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds, undecided } from '../detector.js';
import { countOf, nounOf, origin, siteSubject } from '../task-wording.js';
import { type Growth, judgeGrowth, pendingFor, pendingReason, type Point } from '../growth.js';

export const id = 'task-growth';
export const cause: Cause = 'tasks-leaking';
export const MIN_NEW_TASKS = 10;

type Growing = Extract<Growth, { status: 'growing' }>;

export function seriesOf(o: Observation, site: TaskSite): Point[] {
  const history = site.live_history;
  if (!history || history.length !== o.history.length) return [];
  return o.history.map((h, i) => ({ t_ms: h.t_ms, value: history[i] as number }));
}

export function summary(site: TaskSite, g: Growing): string {
  const added = Math.round(g.added);
  return `${countOf(site.kind, added)} ${origin(site.kind)} ${site.site} in the last ${formatDuration(g.windowMs)} have not finished (${Math.round(g.from)} → ${Math.round(g.to)} live)`;
}

export function message(site: TaskSite, g: Growing): string {
  const perMinute = g.ratePerS * 60;
  return (
    `The live count of ${nounOf(site.kind, 2)} ${origin(site.kind)} ${site.site} rose from ${Math.round(g.from)} to ${Math.round(g.to)} over the last ` +
    `${formatDuration(g.windowMs)} (about ${perMinute.toFixed(perMinute < 10 ? 1 : 0)} a minute), in every quarter of it, and has not come down: ` +
    `${site.spawned} spawned, ${site.completed} finished.`
  );
}

export function remedy(site: TaskSite): string {
  return `Bound the tasks ${origin(site.kind)} ${site.site}: cancel each when its owner goes away, or run the work on a fixed set of tasks.`;
}

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  if (!o.tasks.tracked) return OK;
  const pending = pendingFor(o.history);
  if (pending) return undecided(pendingReason(pending));
  const findings: Finding[] = [];
  for (const site of o.tasks.sites) {
    const points = seriesOf(o, site);
    if (points.length === 0) continue;
    const g = judgeGrowth(points, { minGrowth: MIN_NEW_TASKS, minFraction: 0 });
    if (g.status !== 'growing' || g.added < MIN_NEW_TASKS) continue;
    findings.push({
      id,
      severity: 'warn',
      summary: summary(site, g),
      message: message(site, g),
      subject: siteSubject(site),
      value: Math.round(g.added),
      unit: 'count',
      remedy: remedy(site),
    });
  }
  return found(findings);
}
