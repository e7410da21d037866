// When the promise tracker's init hook is on (src/node-agent/init-windows.cts),
// driven by a simulated clock: promises arrive at a set rate, the hook is on
// in windows and off for the gaps the class draws, and the weighted count of
// the promises seen is checked against the truth.
import test from 'ava';
import { prng } from './helpers/prng.js';
import { INIT_HOOK_COST_NS, INIT_HOOK_SHARE, INIT_WINDOW_MS, InitWindows, MAX_LOG2, MIN_ON_MS } from '../src/node-agent/init-windows.cjs';

/** The promise rate per second at which the init hook's calls take `share` of the time. */
const rateFor = (share: number) => share / (INIT_HOOK_COST_NS * 1e-9);

function judged(perSecond: number, onMs = 100, windows = new InitWindows()): InitWindows {
  windows.observed((perSecond * onMs) / 1000, onMs);
  windows.decide();
  return windows;
}

test('on all the time while its calls take at most the share', (t) => {
  t.is(judged(rateFor(INIT_HOOK_SHARE)).log2, 0);
  t.is(judged(1000).log2, 0);
});

test('above the share, on one window in 2^n, n just large enough', (t) => {
  // The benchmark's service: about 700,000 promises a second, 10.5 % of the time in init calls.
  const busy = judged(700_000);
  t.is(busy.log2, 3);
  t.true((700_000 * INIT_HOOK_COST_NS * 1e-9) / 2 ** busy.log2 <= INIT_HOOK_SHARE, 'the share holds at 2^n');
  t.true((700_000 * INIT_HOOK_COST_NS * 1e-9) / 2 ** (busy.log2 - 1) > INIT_HOOK_SHARE, 'and not at 2^(n-1)');
  t.is(judged(1e12).log2, MAX_LOG2, 'never sparser than the cap');
  t.is(busy.sparsest, 3);
});

test('denser again only with headroom, so it does not swing; dense at once when the program goes quiet', (t) => {
  const windows = judged(700_000);
  // Seen while on: the true rate. Just under where 2^2 would do, but within the headroom: stays at 3.
  judged(rateFor(INIT_HOOK_SHARE * 4) * 0.9, 100, windows);
  t.is(windows.log2, 3);
  judged(rateFor(INIT_HOOK_SHARE * 4) * 0.7, 100, windows);
  t.is(windows.log2, 2);
  judged(10, 100, windows);
  t.is(windows.log2, 0);
  t.is(windows.sparsest, 3, 'the sparsest is remembered until reset');
  windows.reset();
  t.is(windows.sparsest, 0);
});

test('no judgement from too little time with the hook on: one window that fell on a pause does not swing it', (t) => {
  const windows = new InitWindows();
  windows.observed(1e6, MIN_ON_MS / 2);
  t.false(windows.decide());
  t.is(windows.log2, 0);
  const busy = judged(700_000);
  busy.observed(0, INIT_WINDOW_MS); // a window that saw nothing (a GC, a pause)
  t.false(busy.decide());
  busy.observed((700_000 * (MIN_ON_MS - INIT_WINDOW_MS)) / 1000, MIN_ON_MS - INIT_WINDOW_MS);
  busy.decide();
  t.is(busy.log2, 3, 'judged with the windows around it');
});

test('the gaps make the hook on one window in 2^n, and the weighted count of what it saw comes near the truth', (t) => {
  const random = prng(7);
  const windows = judged(700_000);
  const n = windows.log2;
  // 20 s of a steady 700 promises per ms, the hook on for INIT_WINDOW_MS, then off for a drawn gap.
  let now = 0;
  let onMs = 0;
  let seen = 0;
  const endMs = 20_000;
  while (now < endMs) {
    const on = Math.min(INIT_WINDOW_MS, endMs - now);
    onMs += on;
    seen += 700 * on;
    now += on + windows.offMs(random());
  }
  const duty = onMs / Math.max(now, endMs);
  t.true(Math.abs(duty * 2 ** n - 1) < 0.1, `on ${(duty * 100).toFixed(2)} % of the time for 1 in ${2 ** n}`);
  const truth = 700 * endMs;
  const estimate = seen * 2 ** n;
  t.true(Math.abs(estimate - truth) < 0.1 * truth, `estimated ${estimate} promises, truth ${truth}`);
});
