import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check } from '../../src/analysis/findings/heap-growth.js';
import { history, MiB, observation } from '../helpers/observation.js';

test('fires on steady growth, at the measured rate, over the longest window that rises all along', (t) => {
  const o = observation((d) => {
    d.history = history(70, (s) => 100 * MiB + s * 2 * MiB);
  });
  const result = check(o, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 2 * MiB);
  t.is(result.findings[0]?.unit, 'bytes_per_s');
  // 12 bins of 5 s: the first holds seconds 10–14, the last 65–69; their medians are 12 and 67.
  t.is(result.findings[0]!.summary, '110.0 MiB of live heap added in the last 60 s and still rising (2.0 MiB/s)');
  t.regex(result.findings[0]!.message, /^Live bytes \(allocated and not freed\) rose from 124\.0 MiB to 234\.0 MiB over the last 60 s/);
});

test('quiet on a flat heap, a sawtooth, a small rise, and a ramp that levelled off', (t) => {
  const quiet = (live: (s: number) => number) => check(observation((d) => { d.history = history(120, live); }), DEFAULT_THRESHOLDS).status;
  t.is(quiet(() => 100 * MiB), 'ok');
  t.is(quiet((s) => 100 * MiB + (s % 2) * 30 * MiB), 'ok');
  t.is(quiet((s) => 100 * MiB + s * 50_000), 'ok');
  t.is(quiet((s) => 4 * MiB + Math.min(s, 10) * 26 * MiB), 'ok', '260 MiB loaded in the first 10 s');
});

test('a leak that starts late is found within 30 s', (t) => {
  const at = (seconds: number) => check(observation((d) => { d.history = history(seconds, (s) => 80 * MiB + Math.max(0, s - 60) * 2 * MiB); }), DEFAULT_THRESHOLDS).status;
  t.is(at(61), 'ok');
  t.is(at(90), 'found');
});

test('undecided with too little history or no agent, saying how long it still needs', (t) => {
  const short = check(observation((d) => { d.history = history(11, (s) => s * 10 * MiB); }), DEFAULT_THRESHOLDS);
  t.deepEqual(short, { status: 'undecided', reason: 'needs 19 s more history (has 10 s)' });
  const proc = check(observation((d) => { d.allocator.live_bytes = null; }), DEFAULT_THRESHOLDS);
  t.is(proc.status, 'undecided');
});
