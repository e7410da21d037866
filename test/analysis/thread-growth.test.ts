import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check } from '../../src/analysis/findings/thread-growth.js';
import { type Draft, history, observation, thread } from '../helpers/observation.js';

test('fires when threads keep coming, naming their start routine', (t) => {
  const o = observation((d) => {
    d.history = history(40, () => 0, (s) => 3 + s);
    d.threads = Array.from({ length: 40 }, (_, i) => thread({ tid: 200 + i, name: 'w', start_routine: 'handle_conn (svc)' }));
  });
  const result = check(o, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  // 12 bins of 2.5 s over the last 30 s: medians 13.5 (seconds 10–11, shown 14) and 41 (37–39).
  t.is(result.findings[0]?.value, 28);
  t.is(result.findings[0]!.summary, '28 threads started in the last 30 s have not finished (14 → 41)');
  t.regex(result.findings[0]!.message, /40 of the threads run handle_conn \(svc\)/);
});

test("a Node process starting its own pools is not a thread leak; its worker threads are the program's", (t) => {
  const roles = ['main', ...Array(4).fill('libuv-threadpool'), ...Array(4).fill('v8-platform'), 'v8-delayed-tasks', 'inspector-signal'] as const;
  const runtime = roles.map((role, i) => thread({ tid: 100 + i, name: 'node', role, start_routine: role === 'libuv-threadpool' ? 'node+0x932b50' : null }));
  const startup = observation((d) => {
    d.history = history(40, () => 0, (s) => Math.min(3 + s, 13));
    d.threads = runtime as Draft['threads'];
  });
  t.is(check(startup, DEFAULT_THRESHOLDS).status, 'ok', 'the libuv pool and V8 platform threads coming up');
  const workers = observation((d) => {
    d.history = history(40, () => 0, (s) => 13 + s);
    d.threads = [...runtime, ...Array.from({ length: 22 }, (_, i) => thread({ tid: 300 + i, name: 'node', role: 'worker', start_routine: 'node+0x9bb510' }))] as Draft['threads'];
  });
  const result = check(workers, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  // 28 threads added in the last 30 s, less the 10 a Node process may start for itself.
  t.is(result.findings[0]?.value, 28 - 10);
  t.regex(result.findings[0]!.message, /22 of the threads run node\+0x9bb510/);
});

test('quiet on a bounded pool that grows then shrinks, and on a pool of 16 started at once', (t) => {
  const threads = (count: (s: number) => number) => check(observation((d) => { d.history = history(120, () => 0, count); }), DEFAULT_THRESHOLDS).status;
  t.is(threads((s) => (s < 30 ? 3 + s : 3)), 'ok');
  t.is(threads((s) => (s < 1 ? 1 : 17)), 'ok');
  t.is(threads((s) => (s < 70 ? 17 : 33)), 'ok', 'a second pool, started later');
});

test('undecided until the history spans the shortest window', (t) => {
  const short = check(observation((d) => { d.history = history(20, () => 0, (s) => 3 + s); }), DEFAULT_THRESHOLDS);
  t.deepEqual(short, { status: 'undecided', reason: 'needs 10 s more history (has 19 s)' });
});
