// The growth judge over every shape a service has, evaluated as the console
// would: once a second, over the last 15 minutes of history.
import test from 'ava';
import { explainGrowth, type GrowthRule, judgeGrowth, mannKendallZ, type Point, theilSen } from '../../src/analysis/growth.js';
import { HEAP_SHAPES, MiB, type Shape, TASK_SHAPES, THREAD_SHAPES } from '../helpers/shapes.js';

const HISTORY_S = 900;
const RUN_S = 1200;
const HEAP_RULE: GrowthRule = { minGrowth: 8 * MiB, minFraction: 0.05 };
const COUNT_RULE = (n: number): GrowthRule => ({ minGrowth: n, minFraction: 0 });

/** The judgement at each second from 0 to RUN_S: true when growing. */
function timeline(shape: Shape, rule: GrowthRule): boolean[] {
  const series: Point[] = Array.from({ length: RUN_S }, (_, s) => ({ t_ms: 5_000_000 + s * 1000, value: shape.at(s) }));
  return series.map((_, now) => judgeGrowth(series.slice(Math.max(0, now + 1 - HISTORY_S), now + 1), rule).status === 'growing');
}

/** Healthy: never growing after the first minute (or its first cache fill). A leak: found within `within` s of starting, and found from then on. */
function grade(t: import('ava').ExecutionContext, shape: Shape, rule: GrowthRule, within: number) {
  const growing = timeline(shape, rule);
  if (shape.leakFrom === null) {
    const wrong = growing.flatMap((g, s) => (g && s > Math.max(60, shape.knowableFrom ?? 0) ? [s] : []));
    t.deepEqual(wrong, [], `${shape.name}: judged growing at ${wrong.slice(0, 5).join(', ')} s`);
    return;
  }
  const deadline = shape.leakFrom + within;
  const first = growing.findIndex((g, s) => g && s >= (shape.leakFrom as number));
  t.true(first >= 0 && first <= deadline, `${shape.name}: first found at ${first} s`);
  const lost = growing.flatMap((g, s) => (!g && s > deadline ? [s] : []));
  t.true(lost.length <= 0.02 * (RUN_S - deadline), `${shape.name}: not found at ${lost.length} s after ${deadline} s (${lost.slice(0, 8).join(', ')})`);
}

const HEAP_WITHIN: Record<string, number> = {
  'flat for 60 s, then 2 MiB/s': 30,
  '1 MiB/s beside the 2.1 s cache cycle': 75,
  '0.1 MiB/s under a noisy sawtooth cache': 480,
  '40 MiB kept every 120 s': 600,
  'warm-up, sawtooth, then 0.5 MiB/s from 600 s': 90,
};

for (const shape of HEAP_SHAPES)
  test(`live bytes: ${shape.name}`, (t) => grade(t, shape, HEAP_RULE, HEAP_WITHIN[shape.name] ?? 30));

for (const shape of THREAD_SHAPES)
  test(`threads: ${shape.name}`, (t) => grade(t, shape, COUNT_RULE(8), shape.leakFrom === 0 ? 30 : 120));

// A task every 4 s under 40 tasks of noise: found once the leak outgrows the noise (about 40 tasks).
const TASK_WITHIN: Record<string, number> = { 'a task every 4 s from 100 s, under 20 to 60 in flight': 180 };

for (const shape of TASK_SHAPES)
  test(`tasks: ${shape.name}`, (t) => grade(t, shape, COUNT_RULE(10), TASK_WITHIN[shape.name] ?? 30));

test('a late leak is reported with the amount of its window and its rate now', (t) => {
  const shape = HEAP_SHAPES.find((s) => s.name === 'flat for 60 s, then 2 MiB/s') as Shape;
  const series = Array.from({ length: 121 }, (_, s) => ({ t_ms: s * 1000, value: shape.at(s) }));
  const g = judgeGrowth(series, HEAP_RULE);
  if (g.status !== 'growing') return t.fail(g.status);
  // The 120 s window is half flat: the longest window that rises all along is the last minute.
  t.is(g.windowMs, 60_000);
  t.true(Math.abs(g.ratePerS - 2 * MiB) < 0.15 * MiB, `${g.ratePerS / MiB} MiB/s`);
  t.true(Math.abs(g.added - 120 * MiB) < 10 * MiB, `${g.added / MiB} MiB`);
});

test('too little history is pending, with the seconds it still needs', (t) => {
  const series = Array.from({ length: 11 }, (_, s) => ({ t_ms: s * 1000, value: s * 10 * MiB }));
  t.deepEqual(judgeGrowth(series, HEAP_RULE), { status: 'pending', needMs: 18_500, spanMs: 10_000 });
});

test('Mann–Kendall and Theil–Sen on small known series', (t) => {
  t.is(mannKendallZ([1, 1, 1, 1]), 0);
  // n = 5, all rising: S = 10, var = 5·4·15/18.
  t.is(mannKendallZ([1, 2, 3, 4, 5]).toFixed(4), (9 / Math.sqrt(50 / 3)).toFixed(4));
  t.true(mannKendallZ([5, 4, 3, 2, 1]) < 0);
  // One wild outlier does not move the slope.
  t.is(theilSen([0, 1, 2, 3, 100].map((value, t_ms) => ({ t_ms, value }))), 1);
});

test('every window says why it is not growth: a ramp that levelled off is rejected for its flat quarters', (t) => {
  const series = Array.from({ length: 90 }, (_, s) => ({ t_ms: s * 1000, value: 4 * MiB + Math.min(s, 5) * 52 * MiB }));
  const reasons = explainGrowth(series, HEAP_RULE).map((e) => [e.windowMs, e.summary, 'why' in e.judgement ? e.judgement.why : 'growing']);
  t.deepEqual(reasons.map(([w, summary]) => [w, summary]), [[30_000, 'median'], [60_000, 'median'], [60_000, 'mean']]);
  // Flat for the last 85 s: no window rises at all.
  t.true(reasons.every(([, , why]) => /Mann–Kendall|quarter/.test(String(why))), JSON.stringify(reasons));
});
