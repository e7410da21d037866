// The promise tracker's capture budget (src/node-agent/capture-budget.cts),
// driven by a simulated clock: promises arrive at a set rate, each capture
// costs a set time, and the sampled counts are checked against the truth.
import test from 'ava';
import { prng } from './helpers/prng.js';
import {
  CAPTURE_BURST_MS,
  CAPTURE_TIME_SHARE,
  CaptureBudget,
  DENSER_WINDOW_MS,
} from '../src/node-agent/capture-budget.cjs';

interface Phase {
  /** Promises per simulated millisecond. */
  readonly perMs: number;
  readonly ms: number;
  /** What a capture costs, ms; a function to make some captures slow. */
  readonly costMs: number | ((n: number) => number);
  /** A loaded machine: after each `runMs` the program waits `waitMs` for a CPU (wall time passes, nothing runs). */
  readonly preempted?: { readonly runMs: number; readonly waitMs: number };
}

interface Outcome {
  readonly created: number;
  /** Promises of the marked kind (every `markEvery`-th), and their estimate from the captures' weights. */
  readonly marked: number;
  readonly markedEstimate: number;
  readonly captures: number;
  readonly spentMs: number;
  readonly elapsedMs: number;
  readonly shifts: number[];
}

/** Runs the phases through a budget the way the tracker does: countdown, capture, charge, tick. */
function simulate(budget: CaptureBudget, phases: readonly Phase[], markEvery = 8, seed = 1): Outcome {
  const random = prng(seed);
  let now = 0;
  let nextTick = DENSER_WINDOW_MS;
  let countdown = 1;
  let created = 0;
  let marked = 0;
  let markedEstimate = 0;
  let captures = 0;
  const shifts: number[] = [];
  for (const phase of phases) {
    const end = now + phase.ms;
    let ranMs = 0;
    while (now < end) {
      const step = 1 / phase.perMs;
      now += step;
      ranMs += step;
      if (phase.preempted && ranMs >= phase.preempted.runMs) {
        now += phase.preempted.waitMs;
        ranMs = 0;
      }
      ++created;
      const isMarked = created % markEvery === 0;
      if (isMarked) ++marked;
      while (now >= nextTick) {
        if (budget.tick(nextTick, created)) countdown = budget.gap(random());
        nextTick += DENSER_WINDOW_MS;
      }
      if (--countdown > 0) continue;
      const weight = 2 ** budget.shift;
      if (isMarked) markedEstimate += weight;
      ++captures;
      const took = typeof phase.costMs === 'number' ? phase.costMs : phase.costMs(captures);
      now += took;
      budget.captured(took, now, created);
      countdown = budget.gap(random());
    }
    shifts.push(budget.shift);
  }
  return { created, marked, markedEstimate, captures, spentMs: budget.spentMs, elapsedMs: now, shifts };
}

test('a burst the allowance covers is captured whole: exact counts', (t) => {
  const budget = new CaptureBudget(0);
  // 1,000 promises at 20 µs a capture: 20 ms of captures, inside the 50 ms allowance.
  const out = simulate(budget, [{ perMs: 100, ms: 10, costMs: 0.02 }]);
  t.is(out.captures, out.created);
  t.is(out.markedEstimate, out.marked);
  t.is(budget.sparsest, 0);
});

test('a flood is sampled so that captures take about the share, and the weights keep the counts unbiased', (t) => {
  const budget = new CaptureBudget(0);
  // 2,000 promises a millisecond for 5 s at 20 µs a capture: capturing all
  // would take 40 times the wall clock.
  const out = simulate(budget, [{ perMs: 2000, ms: 5000, costMs: 0.02 }]);
  const allowed = CAPTURE_BURST_MS + CAPTURE_TIME_SHARE * out.elapsedMs;
  t.true(out.spentMs <= allowed * 1.25, `captures took ${out.spentMs.toFixed(0)} ms; the budget allows ${allowed.toFixed(0)} ms`);
  t.true(out.spentMs >= allowed * 0.4, `captures took ${out.spentMs.toFixed(0)} ms: the budget is not used (${allowed.toFixed(0)} ms)`);
  // The share needs one in 2000 * 0.02 / share: 4,000 at 1 % (shift 12).
  t.is(2 ** budget.shift, 2 ** Math.ceil(Math.log2((2000 * 0.02) / CAPTURE_TIME_SHARE)));
  const error = Math.abs(out.markedEstimate - out.marked) / out.marked;
  t.true(error < 0.1, `estimate ${out.markedEstimate} against ${out.marked} (${(100 * error).toFixed(1)} % off)`);
});

test('after the flood, sampling is dense again within a window or two', (t) => {
  const budget = new CaptureBudget(0);
  const out = simulate(budget, [
    { perMs: 2000, ms: 2000, costMs: 0.02 },
    { perMs: 0.1, ms: 2 * DENSER_WINDOW_MS + 1, costMs: 0.02 }, // 100 a second: capturing all takes 0.2 %
  ]);
  t.true(out.shifts[0]! >= 10);
  t.is(out.shifts[1], 0);
  t.is(budget.sparsest, out.shifts[0]!, 'the snapshot can still say the counts are estimates');
  budget.reset();
  t.is(budget.sparsest, 0, 'a new recording starts exact');
});

test('on a loaded machine (the program preempted often), a flood is still sampled to the share of the wall clock', (t) => {
  const budget = new CaptureBudget(0);
  // The program runs 3 ms, then waits 6 ms for a CPU: every wait refills the
  // allowance by more than a capture costs, which must not keep the rate
  // from being measured.
  const out = simulate(budget, [{ perMs: 300, ms: 5000, costMs: 0.01, preempted: { runMs: 3, waitMs: 6 } }]);
  const allowed = CAPTURE_BURST_MS + CAPTURE_TIME_SHARE * out.elapsedMs;
  t.true(out.spentMs <= allowed * 1.25, `captures took ${out.spentMs.toFixed(0)} ms; the budget allows ${allowed.toFixed(0)} ms`);
  t.true(budget.shift > 0, 'sampled');
});

test('one capture slowed by a pause (a GC) does not throw the sampling off', (t) => {
  const steady = new CaptureBudget(0);
  simulate(steady, [{ perMs: 500, ms: 3000, costMs: 0.02 }]);
  const paused = new CaptureBudget(0);
  simulate(paused, [{ perMs: 500, ms: 3000, costMs: (n) => (n === 3000 ? 100 : 0.02) }]);
  t.true(paused.shift <= steady.shift + 1, `${paused.shift} against ${steady.shift} without the pause`);
});

test('geometric gaps average 2^shift, also where the interval is small', (t) => {
  const budget = new CaptureBudget(0);
  const random = prng(7);
  const n = 40000;
  const meanGap = (shift: number) => {
    budget.shift = shift;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += budget.gap(random());
    return sum / n;
  };
  // Standard errors: 0.007 at shift 1, 0.3 at shift 6.
  t.true(Math.abs(meanGap(1) - 2) < 0.04, 'one in 2 (a rounded-up exponential gap would average 2.54)');
  t.true(Math.abs(meanGap(6) - 64) < 1.5);
  budget.shift = 0;
  t.is(budget.gap(0.99), 1);
});
