// task-growth: a spawn site whose live task count keeps rising across the
// history and has never come down: tasks are spawned faster than they
// finish. A busy site whose count goes up and down, or that levelled off,
// is bounded and stays quiet.
import { formatDuration } from '../../format.js';
import type { Finding, Observation, TaskSite } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds, undecided } from '../detector.js';
import { countOf, nounOf, origin, siteSubject } from '../task-wording.js';
import { type Point, type Trend, trendOf } from '../trend.js';

export const id = 'task-growth';
export const MIN_SAMPLES = 8;
export const MIN_SPAN_MS = 8_000;
export const MIN_NEW_TASKS = 10;
export const MIN_RISING_FRACTION = 0.7;
/** The last third of the window must still add this share of the growth: the rise goes on. */
export const RECENT_SHARE = 0.1;

export function seriesOf(o: Observation, site: TaskSite): Point[] {
  const history = site.live_history;
  if (!history || history.length !== o.history.length) return [];
  return o.history.map((h, i) => ({ t_ms: h.t_ms, value: history[i] as number }));
}

function stillRising(points: readonly Point[], added: number): boolean {
  const from = points[Math.floor((points.length * 2) / 3)];
  const last = points[points.length - 1];
  return !!from && !!last && last.value - from.value >= Math.max(1, added * RECENT_SHARE);
}

export function summary(site: TaskSite, trend: Trend): string {
  const added = trend.last - trend.first;
  return `${countOf(site.kind, added)} ${origin(site.kind)} ${site.site} in ${formatDuration(trend.spanMs)} have not finished (${trend.first} → ${trend.last} live)`;
}

export function message(site: TaskSite, trend: Trend): string {
  const perMinute = trend.slopePerS * 60;
  return (
    `The live count of ${nounOf(site.kind, 2)} ${origin(site.kind)} ${site.site} rose from ${trend.first} to ${trend.last} over ` +
    `${formatDuration(trend.spanMs)} (about ${perMinute.toFixed(perMinute < 10 ? 1 : 0)} a minute) and has not come down: ` +
    `${site.spawned} spawned, ${site.completed} finished.`
  );
}

export function remedy(site: TaskSite): string {
  return `Bound the tasks ${origin(site.kind)} ${site.site}: cancel each when its owner goes away, or run the work on a fixed set of tasks.`;
}

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  if (!o.tasks.tracked) return OK;
  const span = o.history.length > 1 ? (o.history.at(-1)?.t_ms ?? 0) - (o.history[0]?.t_ms ?? 0) : 0;
  if (o.history.length < MIN_SAMPLES || span < MIN_SPAN_MS)
    return undecided(`needs ${MIN_SPAN_MS / 1000} s of history (has ${Math.floor(span / 1000)} s)`);
  const findings: Finding[] = [];
  for (const site of o.tasks.sites) {
    const points = seriesOf(o, site);
    const trend = trendOf(points);
    if (!trend) continue;
    const added = trend.last - trend.first;
    if (added < MIN_NEW_TASKS || trend.risingFraction < MIN_RISING_FRACTION || trend.last < trend.max) continue;
    if (!stillRising(points, added)) continue;
    findings.push({
      id,
      severity: 'warn',
      summary: summary(site, trend),
      message: message(site, trend),
      subject: siteSubject(site),
      value: added,
      unit: 'count',
      remedy: remedy(site),
    });
  }
  return found(findings);
}
