// The accuracy scenarios that fit in CI's time (test/scenarios/catalogue.ts,
// marked ci): each graded as `npm run accuracy` grades it, 75 s after start.
import test from 'ava';
import { SCENARIOS } from './scenarios/catalogue.js';
import { runAll } from './scenarios/runner.js';

test('the CI scenarios are graded right at 75 s: verdict, main finding, amount, and no warning on a healthy program', async (t) => {
  const chosen = SCENARIOS.filter((s) => s.ci);
  t.timeout(chosen.length * 90_000);
  const grades = await runAll(chosen, 2);
  for (const g of grades) t.true(g.right, `${g.scenario.id}: ${g.wrong.join('; ')}${g.error ? ` (${g.error})` : ''}`);
  t.true(grades.length >= 6);
});
