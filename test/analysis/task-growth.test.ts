import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check } from '../../src/analysis/findings/task-growth.js';
import { history, observation, site, tasks } from '../helpers/observation.js';

const SECONDS = 40;

function withSites(...series: ((s: number) => number)[]) {
  return observation((d) => {
    d.history = history(SECONDS, () => 0);
    d.tasks = tasks(
      series.map((f, i) => {
        const live_history = Array.from({ length: SECONDS }, (_, s) => f(s));
        return site({ site: `s.c:${i + 1}`, live: live_history.at(-1)!, spawned: 1000, live_history });
      }),
    );
  });
}

test('fires on a site whose live count keeps rising', (t) => {
  const result = check(withSites((s) => 3 * s), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.subject.label, 's.c:1');
  // Bins of 2.5 s over the last 30 s: medians 31.5 (seconds 10–11) and 114 (37–39).
  t.is(result.findings[0]?.value, 83);
  t.is(result.findings[0]!.summary, '83 tasks spawned at s.c:1 in the last 30 s have not finished (32 → 114 live)');
});

test('quiet on a busy but bounded site: up and down, or levelled off', (t) => {
  t.is(check(withSites((s) => 20 + ((s * 7) % 13)), DEFAULT_THRESHOLDS).status, 'ok');
  t.is(check(withSites((s) => Math.min(50, s * 10)), DEFAULT_THRESHOLDS).status, 'ok');
  t.is(check(withSites((s) => (s < 10 ? s * 5 : Math.max(0, 50 - (s - 10) * 5))), DEFAULT_THRESHOLDS).status, 'ok');
  t.is(check(withSites((s) => ((s * 7919) % 20 === 0 ? 64 : 0)), DEFAULT_THRESHOLDS).status, 'ok', 'a sampled promise, weight 64, now and then');
  t.is(check(withSites((s) => (s === SECONDS - 1 ? 64 : 0)), DEFAULT_THRESHOLDS).status, 'ok', 'one sampled promise in the last sample');
});

test('undecided on a short history; sites without a recorded history are skipped', (t) => {
  const short = observation((d) => {
    d.history = history(4, () => 0);
    d.tasks = tasks([site({ site: 'a.c:1', live_history: [0, 10, 20, 30] })]);
  });
  t.is(check(short, DEFAULT_THRESHOLDS).status, 'undecided');
  const none = observation((d) => {
    d.history = history(SECONDS, () => 0);
    d.tasks = tasks([site({ site: 'a.c:1', live: 500, live_history: null })]);
  });
  t.is(check(none, DEFAULT_THRESHOLDS).status, 'ok');
});
