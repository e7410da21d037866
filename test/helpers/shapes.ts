// Series of the shapes real services have, sampled once a second, with
// their truth: when (if ever) a leak starts. Deterministic (seeded noise).
import { prng } from './prng.js';

export const MiB = 1024 * 1024;

export interface Shape {
  readonly name: string;
  /** Value at second s. */
  readonly at: (s: number) => number;
  /** The second the leak starts; null for a healthy series. */
  readonly leakFrom: number | null;
  /**
   * Until this second no judge can know the series is healthy: a cache's
   * first fill rises like a leak until the cache first evicts.
   */
  readonly knowableFrom?: number;
}

/** Zero-mean noise of about ±amplitude, replayable per seed. */
export function noise(seed: number, amplitude: number): (s: number) => number {
  const values: number[] = [];
  const next = prng(seed);
  return (s) => {
    while (values.length <= s) values.push((next() + next() + next() - 1.5) * (2 / 1.5) * amplitude);
    return values[s] as number;
  };
}

/** A cache that fills for `fillS` of every `periodS` seconds and then drops back. */
export function sawtooth(periodS: number, fillS: number, amplitude: number): (s: number) => number {
  return (s) => {
    const phase = s % periodS;
    return phase < fillS ? (amplitude * phase) / fillS : 0;
  };
}

const ramp = (seconds: number, height: number) => (s: number) => Math.min(1, s / seconds) * height;

export const HEAP_SHAPES: readonly Shape[] = [
  { name: 'flat with noise', at: ((n) => (s: number) => 100 * MiB + n(s))(noise(1, 2 * MiB)), leakFrom: null },
  { name: '260 MiB loaded in 5 s, then idle', at: (s) => 4 * MiB + ramp(5, 260 * MiB)(s), leakFrom: null },
  {
    name: '200 MiB warm-up over 40 s, then light load',
    at: ((n) => (s: number) => 20 * MiB + ramp(40, 200 * MiB)(s) + sawtooth(7, 6, 6 * MiB)(s) + n(s))(noise(2, 2 * MiB)),
    leakFrom: null,
  },
  { name: 'sawtooth cache (50 s, 80 MiB)', at: ((n) => (s: number) => 100 * MiB + sawtooth(50, 45, 80 * MiB)(s) + n(s))(noise(3, 3 * MiB)), leakFrom: null },
  {
    name: 'slow sawtooth (240 s, 150 MiB)',
    at: ((n) => (s: number) => 100 * MiB + sawtooth(240, 200, 150 * MiB)(s) + n(s))(noise(4, 3 * MiB)),
    leakFrom: null,
    // It first evicts at 200 s; a judge that does not jump at one low sample sees it a few samples later.
    knowableFrom: 205,
  },
  { name: 'a reload doubles the data at 300 s', at: (s) => 100 * MiB + (s >= 300 ? Math.min(1, (s - 300) / 3) * 100 * MiB : 0), leakFrom: null },
  {
    name: 'mean-reverting noise (±30 MiB)',
    at: ((next) => {
      const values = [0];
      return (s: number) => {
        while (values.length <= s) values.push(0.9 * (values.at(-1) as number) + (next() - 0.5) * 25 * MiB);
        return 300 * MiB + (values[s] as number);
      };
    })(prng(5)),
    leakFrom: null,
  },
  { name: 'a 40 MiB cache cycling every 2.1 s, seen once a second', at: ((n) => (s: number) => 100 * MiB + ((s / 2.1) % 1) * 40 * MiB + n(s))(noise(9, 1 * MiB)), leakFrom: null },
  {
    name: '1 MiB/s beside the 2.1 s cache cycle',
    at: ((n) => (s: number) => 100 * MiB + s * MiB + ((s / 2.1) % 1) * 40 * MiB + n(s))(noise(10, 1 * MiB)),
    leakFrom: 0,
  },
  { name: 'leak of 2 MiB/s from the start', at: (s) => 50 * MiB + s * 2 * MiB, leakFrom: 0 },
  { name: 'flat for 60 s, then 2 MiB/s', at: ((n) => (s: number) => 80 * MiB + Math.max(0, s - 60) * 2 * MiB + n(s))(noise(6, 1 * MiB)), leakFrom: 60 },
  {
    name: '0.1 MiB/s under a noisy sawtooth cache',
    at: ((n) => (s: number) => 100 * MiB + s * 0.1 * MiB + sawtooth(50, 45, 80 * MiB)(s) + n(s))(noise(7, 4 * MiB)),
    leakFrom: 0,
  },
  { name: '40 MiB kept every 120 s', at: (s) => 100 * MiB + Math.floor(s / 120) * 40 * MiB, leakFrom: 120 },
  {
    name: 'warm-up, sawtooth, then 0.5 MiB/s from 600 s',
    at: ((n) => (s: number) => 20 * MiB + ramp(30, 150 * MiB)(s) + sawtooth(20, 15, 20 * MiB)(s) + Math.max(0, s - 600) * 0.5 * MiB + n(s))(noise(8, 2 * MiB)),
    leakFrom: 600,
  },
];

export const THREAD_SHAPES: readonly Shape[] = [
  { name: 'a pool of 16 started in the first second', at: (s) => (s < 1 ? 1 : 17), leakFrom: null },
  { name: 'a second pool of 16 at 400 s', at: (s) => (s < 1 ? 1 : s < 400 ? 17 : 33), leakFrom: null },
  { name: 'short-lived helpers, 0 to 6 at a time', at: (s) => 5 + Math.floor(prng(s + 17)() * 7), leakFrom: null },
  { name: 'a thread every 2 s, never joined', at: (s) => 3 + Math.floor(s / 2), leakFrom: 0 },
  { name: 'a thread every 10 s from 200 s', at: (s) => 9 + Math.max(0, Math.floor((s - 200) / 10)), leakFrom: 200 },
];

export const TASK_SHAPES: readonly Shape[] = [
  { name: 'one sampled promise (weight 64) now and then', at: (s) => (prng(s * 7 + 1)() < 0.05 ? 64 : 0), leakFrom: null },
  { name: 'busy site, 20 to 60 in flight', at: (s) => 20 + Math.floor(prng(s + 11)() * 40), leakFrom: null },
  { name: '25 tasks parked at start-up', at: (s) => (s < 2 ? 0 : 25), leakFrom: null },
  { name: 'a task a second, never finished', at: (s) => s, leakFrom: 0 },
  { name: 'a task every 4 s from 100 s, under 20 to 60 in flight', at: (s) => 20 + Math.floor(prng(s + 13)() * 40) + Math.max(0, Math.floor((s - 100) / 4)), leakFrom: 100 },
];
