import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check, MIN_SPAN_MS } from '../../src/analysis/findings/heap-growth.js';
import { history, MiB, observation } from '../helpers/observation.js';

test('fires on steady growth, at the measured rate', (t) => {
  const o = observation((d) => {
    d.history = history(20, (s) => 100 * MiB + s * 2 * MiB);
  });
  const result = check(o, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 2 * MiB);
  t.is(result.findings[0]?.unit, 'bytes_per_s');
  t.regex(result.findings[0]!.summary, /^38\.0 MiB of live heap added in 19 s and still rising \(2\.0 MiB\/s\)$/);
});

test('quiet on a flat heap, a sawtooth, and a small rise', (t) => {
  t.is(check(observation((d) => { d.history = history(20, () => 100 * MiB); }), DEFAULT_THRESHOLDS).status, 'ok');
  t.is(check(observation((d) => { d.history = history(20, (s) => 100 * MiB + (s % 2) * 30 * MiB); }), DEFAULT_THRESHOLDS).status, 'ok');
  t.is(check(observation((d) => { d.history = history(20, (s) => 100 * MiB + s * 100_000); }), DEFAULT_THRESHOLDS).status, 'ok');
});

test('undecided with too little history or no agent', (t) => {
  const short = check(observation((d) => { d.history = history(MIN_SPAN_MS / 1000 - 1, (s) => s * 10 * MiB); }), DEFAULT_THRESHOLDS);
  t.is(short.status, 'undecided');
  const proc = check(observation((d) => { d.allocator.live_bytes = null; }), DEFAULT_THRESHOLDS);
  t.is(proc.status, 'undecided');
});
