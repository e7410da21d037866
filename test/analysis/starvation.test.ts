import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check } from '../../src/analysis/findings/starvation.js';
import { observation, site, tasks } from '../helpers/observation.js';

const waiting = (waitedMs: number, lastPollAgo: number | null, stuck = 0) =>
  observation((d) => {
    d.tasks = tasks([site({ site: 'q.c:3', live: 2, scheduled: 2, scheduled_longest_ms: waitedMs, scheduled_over_threshold: stuck, spawned: 2 })], { last_poll_ms_ago: lastPollAgo });
  });

test('a task passed over for 2.5 s while the runtime polls others', (t) => {
  const result = check(waiting(2500, 20), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.summary, 'a task spawned at q.c:3 has waited 2.5 s to be polled while others ran');
  t.is(result.findings[0]?.value, 2500);
});

test('not starvation: a runtime that polls nothing (blocked or idle), a short wait, or a task stuck for good (idle-forever)', (t) => {
  t.is(check(waiting(2500, 3000), DEFAULT_THRESHOLDS).status, 'ok', 'no poll since it became ready: the whole loop is stalled');
  t.is(check(waiting(2500, null), DEFAULT_THRESHOLDS).status, 'ok');
  t.is(check(waiting(400, 20), DEFAULT_THRESHOLDS).status, 'ok');
  t.is(check(waiting(45_000, 20, 1), DEFAULT_THRESHOLDS).status, 'ok');
});
