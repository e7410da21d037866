import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check } from '../../src/analysis/findings/lost-waker.js';
import { observation, site, tasks } from '../helpers/observation.js';

const lost = site({ site: 'io.c:88', live: 3, idle: 3, no_waker: 3 });
const waiting = site({ site: 'timer.c:5', live: 10, idle: 10, no_waker: 0 });

test('fires on idle tasks with no waker left, per site', (t) => {
  const result = check(observation((d) => (d.tasks = tasks([lost, waiting]))), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.deepEqual(
    result.findings.map((f) => [f.subject.label, f.value, f.severity]),
    [['io.c:88', 3, 'warn']],
  );
  t.is(result.findings[0]?.summary, '3 tasks spawned at io.c:88 can never be woken: no waker is left');
});

test('undecided when the runtime reports no wakers; quiet without tasks', (t) => {
  t.is(check(observation((d) => (d.tasks = tasks([lost], { wakers_tracked_kinds: [] }))), DEFAULT_THRESHOLDS).status, 'undecided');
  t.is(check(observation(), DEFAULT_THRESHOLDS).status, 'ok');
});

test('kinds whose runtime does not report wakers are not judged', (t) => {
  const promise = site({ site: 'cart.js:14', kind: 'promise', live: 3, idle: 3, no_waker: 3 });
  t.is(check(observation((d) => (d.tasks = tasks([promise], { wakers_tracked_kinds: ['task'] }))), DEFAULT_THRESHOLDS).status, 'ok');
});
