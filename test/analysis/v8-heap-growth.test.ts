import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check } from '../../src/analysis/findings/v8-heap-growth.js';
import { type Draft, MiB, nodeRuntime, observation } from '../helpers/observation.js';
import { sawtooth } from '../helpers/shapes.js';

const SPACES = ['new_space', 'old_space', 'code_space', 'large_object_space'];

/** A Node process whose heap had `young(s)` in new space and `old(s)` in old space at second s. */
function node(seconds: number, young: (s: number) => number, old: (s: number) => number) {
  return observation((d) => {
    const runtime = nodeRuntime(100 * MiB);
    d.node = {
      ...runtime,
      v8_heap_spaces: SPACES,
      v8_heap_history: Array.from({ length: seconds }, (_, s) => {
        const spaces = [young(s), old(s), 2 * MiB, 1 * MiB];
        return { t_ms: 1_000_000 + s * 1000, used_bytes: spaces.reduce((a, b) => a + b, 0), spaces };
      }),
    } as Draft['node'];
  });
}

test('a global array that only grows: found through the scavenges, naming old space', (t) => {
  // Young generation churns 2–18 MiB every 8 s; each request's object is promoted and kept: 1 MiB/s.
  const result = check(node(90, (s) => 2 * MiB + sawtooth(8, 7, 16 * MiB)(s), (s) => 40 * MiB + s * MiB), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  const [f] = result.findings;
  t.is(f?.severity, 'error');
  t.true(Math.abs(f!.value - MiB) < 0.1 * MiB, `${f!.value / MiB} MiB/s`);
  t.regex(f!.summary, /of JavaScript heap added in the last 60 s and still rising \(1\.0 MiB\/s\), most of it in old_space$/);
});

test('quiet on a busy heap whose collections bring it back, and on a start-up load', (t) => {
  t.is(check(node(300, (s) => 2 * MiB + sawtooth(8, 7, 16 * MiB)(s), () => 40 * MiB), DEFAULT_THRESHOLDS).status, 'ok');
  // Old space: a major collection every 60 s gives back what the minute promoted.
  t.is(check(node(300, () => 4 * MiB, (s) => 40 * MiB + sawtooth(60, 55, 30 * MiB)(s)), DEFAULT_THRESHOLDS).status, 'ok');
  t.is(check(node(300, () => 4 * MiB, (s) => 10 * MiB + Math.min(s, 20) * 10 * MiB), DEFAULT_THRESHOLDS).status, 'ok');
});

test('not a Node process: nothing to judge; a short recording: pending', (t) => {
  t.is(check(observation(), DEFAULT_THRESHOLDS).status, 'ok');
  t.deepEqual(check(node(10, () => MiB, (s) => s * 10 * MiB), DEFAULT_THRESHOLDS), { status: 'undecided', reason: 'needs 20 s more history (has 9 s)' });
});
