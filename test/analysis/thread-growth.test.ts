import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check } from '../../src/analysis/findings/thread-growth.js';
import { type Draft, history, observation, thread } from '../helpers/observation.js';

test('fires when threads keep coming, naming their start routine', (t) => {
  const o = observation((d) => {
    d.history = history(12, () => 0, (s) => 3 + s * 4);
    d.threads = Array.from({ length: 40 }, (_, i) => thread({ tid: 200 + i, name: 'w', start_routine: 'handle_conn (svc)' }));
  });
  const result = check(o, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 44);
  t.regex(result.findings[0]!.message, /40 of the threads run handle_conn \(svc\)/);
});

test("a Node process starting its own pools is not a thread leak; its worker threads are the program's", (t) => {
  const roles = ['main', ...Array(4).fill('libuv-threadpool'), ...Array(4).fill('v8-platform'), 'v8-delayed-tasks', 'inspector-signal'] as const;
  const runtime = roles.map((role, i) => thread({ tid: 100 + i, name: 'node', role, start_routine: role === 'libuv-threadpool' ? 'node+0x932b50' : null }));
  const startup = observation((d) => {
    d.history = history(12, () => 0, (s) => Math.min(3 + s, 13));
    d.threads = runtime as Draft['threads'];
  });
  t.is(check(startup, DEFAULT_THRESHOLDS).status, 'ok', 'the libuv pool and V8 platform threads coming up');
  const workers = observation((d) => {
    d.history = history(12, () => 0, (s) => 13 + s * 2);
    d.threads = [...runtime, ...Array.from({ length: 22 }, (_, i) => thread({ tid: 300 + i, name: 'node', role: 'worker', start_routine: 'node+0x9bb510' }))] as Draft['threads'];
  });
  const result = check(workers, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 22 - 10);
  t.regex(result.findings[0]!.message, /22 of the threads run node\+0x9bb510/);
});

test('quiet on a bounded pool that grows then shrinks', (t) => {
  const o = observation((d) => {
    d.history = history(12, () => 0, (s) => (s < 6 ? 3 + s * 4 : 3));
  });
  t.is(check(o, DEFAULT_THRESHOLDS).status, 'ok');
});
