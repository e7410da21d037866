import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check, ERROR_MIN_TASKS, WARN_MIN_TASKS } from '../../src/analysis/findings/idle-forever.js';
import { observation, site, tasks } from '../helpers/observation.js';

const leaking = site({ site: 'session.rs:42', live: 5559, idle: 5559, idle_over_threshold: 5559, oldest_idle_ms: 3_600_000, spawned: 5559 });
const acceptLoop = site({ site: 'server.rs:10', live: 1, idle: 1, idle_over_threshold: 1, oldest_idle_ms: 90_000, spawned: 1 });
const busy = site({ site: 'handler.rs:7', live: 40, running: 2, idle: 38, idle_over_threshold: 0, oldest_idle_ms: 200, spawned: 90_000, completed: 89_960 });

test('counts the tasks idle past the threshold at each site, worst severity for the most', (t) => {
  const result = check(observation((d) => (d.tasks = tasks([leaking, acceptLoop, busy]))), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.deepEqual(
    result.findings.map((f) => [f.subject.label, f.severity, f.value]),
    [
      ['session.rs:42', 'error', 5559],
      ['server.rs:10', 'info', 1],
    ],
  );
  t.is(result.findings[0]?.summary, '5,559 tasks spawned at session.rs:42 have been idle for over 30 s');
  t.is(result.findings[1]?.summary, '1 task spawned at server.rs:10 has been idle for over 30 s');
  t.regex(result.findings[0]!.message, /the oldest for 60 min/);
});

test('severity steps at the named counts', (t) => {
  const at = (n: number) => {
    const r = check(observation((d) => (d.tasks = tasks([site({ site: 'a.c:1', live: n, idle: n, idle_over_threshold: n })]))), DEFAULT_THRESHOLDS);
    return r.status === 'found' ? r.findings[0]?.severity : r.status;
  };
  t.is(at(WARN_MIN_TASKS - 1), 'info');
  t.is(at(WARN_MIN_TASKS), 'warn');
  t.is(at(ERROR_MIN_TASKS), 'error');
});

test('promises read as pending, created at', (t) => {
  const promises = site({ site: 'cart.js:14', kind: 'promise', live: 3000, idle: 3000, idle_over_threshold: 3000 });
  const result = check(observation((d) => (d.tasks = tasks([promises]))), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.summary, '3,000 promises created at cart.js:14 have been pending for over 30 s');
});

test('spans read as open and not ended; the message says what would end them', (t) => {
  const spans = site({ site: 'checkout.js:9', kind: 'span', live: 12, idle: 12, idle_over_threshold: 12, spawned: 40, completed: 28 });
  const result = check(observation((d) => (d.tasks = tasks([spans]))), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.summary, '12 spans created at checkout.js:9 have been open for over 30 s');
  t.regex(result.findings[0]?.message ?? '', /12 of the 12 live spans created at checkout\.js:9 have not ended for over 30 s/);
  t.regex(result.findings[0]?.message ?? '', /40 were created there and 28 finished\. If nothing will ever end them, they are leaked\./);
});

test('quiet without tasks; undecided when the snapshot counted at another threshold', (t) => {
  t.is(check(observation(), DEFAULT_THRESHOLDS).status, 'ok');
  const other = check(observation((d) => (d.tasks = tasks([leaking], { idle_threshold_ms: 5000 }))), DEFAULT_THRESHOLDS);
  t.is(other.status, 'undecided');
});

test('tasks spawned and never polled are stuck too, whatever their state, and said to be never polled', async (t) => {
  const { check: idleForever } = await import('../../src/analysis/findings/idle-forever.js');
  const { DEFAULT_THRESHOLDS: thresholds } = await import('../../src/analysis/detector.js');
  const { observation: build, site: at, tasks: list } = await import('../helpers/observation.js');
  const parked = build((d) => {
    d.tasks = list([at({ site: 'rt.c:88', live: 160, scheduled: 160, scheduled_over_threshold: 160, never_polled: 160, spawned: 160 })]);
  });
  const result = idleForever(parked, thresholds);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 160);
  t.is(result.findings[0]?.severity, 'warn');
  t.is(result.findings[0]?.summary, '160 tasks spawned at rt.c:88 have never been polled in over 30 s');
  const mixed = build((d) => {
    d.tasks = list([at({ site: 'rt.c:90', live: 30, idle: 20, idle_over_threshold: 20, scheduled: 10, scheduled_over_threshold: 10, never_polled: 4, spawned: 30 })]);
  });
  const both = idleForever(mixed, thresholds);
  if (both.status !== 'found') return t.fail(both.status);
  t.is(both.findings[0]?.summary, '30 tasks spawned at rt.c:90 have made no progress for over 30 s (4 never polled)');
  t.regex(both.findings[0]!.message, /20 are idle since their last poll, 10 have waited that long to be polled, and 4 were never polled at all/);
});

test('promises, timers and spans are not polled: a pending one is pending, not "never polled"', async (t) => {
  const { check: idleForever } = await import('../../src/analysis/findings/idle-forever.js');
  const { DEFAULT_THRESHOLDS: thresholds } = await import('../../src/analysis/detector.js');
  const { observation: build, site: at, tasks: list } = await import('../helpers/observation.js');
  const result = idleForever(build((d) => {
    d.tasks = list([at({ kind: 'promise', site: 'cart.js:14', live: 40, idle: 40, idle_over_threshold: 40, never_polled: 40, spawned: 40 })]);
  }), thresholds);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.summary, '40 promises created at cart.js:14 have been pending for over 30 s');
});
