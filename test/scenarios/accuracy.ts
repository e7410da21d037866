// npm run accuracy: every scenario of the catalogue, two at a time, graded
// at 75 s; writes docs/accuracy.md. `--only id,id` runs some; `--ci` the
// subset npm test runs. Exit 1 when any scenario is graded wrong.
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { formatBytes } from '../../src/format.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { type Amount, SCENARIOS } from './catalogue.js';
import { GRADE_AT_MS, type Grade, runAll } from './runner.js';

function amountText(a: Amount | null): string {
  if (!a) return '—';
  const show = (v: number) => (a.unit === 'count' ? String(Math.round(v)) : a.unit === 'bytes' ? formatBytes(v) : `${formatBytes(v)}/s`);
  return `${a.measured === null ? 'none' : show(a.measured)} for ${show(a.expected)} (±${Math.round(a.tolerance * 100)}%)`;
}

export function table(grades: readonly Grade[]): string {
  const rows = grades.map((g) => {
    const truth = `${g.truth.cause}${g.truth.finding ? ` (${g.truth.finding})` : ''}`;
    const verdict = g.verdict ? `${g.verdict.cause}${g.verdict.because.length ? ` (${g.verdict.because.join(', ')})` : ''}` : g.error ?? 'not run';
    const loud = g.truth.cause === 'steady' ? ([...new Set([...g.early, ...g.late])].join(', ') || 'none') : '';
    return `| ${g.scenario.id} | ${g.scenario.shape} | ${g.scenario.allocator} | ${truth} | ${verdict}${loud ? `; warn/error at 60–75 s: ${loud}` : ''} | ${amountText(g.amount)} | ${g.right ? 'right' : `**wrong**: ${g.wrong.join('; ')}`} |`;
  });
  return ['| scenario | shape | allocator | truth | verdict at 75 s | amount | graded |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const only = args.includes('--only') ? (args[args.indexOf('--only') + 1] ?? '').split(',') : null;
  const chosen = SCENARIOS.filter((s) => (only ? only.includes(s.id) : args.includes('--ci') ? s.ci : true));
  const started = Date.now();
  const grades = await runAll(chosen, 2, (g) => process.stderr.write(`${g.right ? 'right' : 'WRONG'} ${g.scenario.id}${g.right ? '' : `: ${g.wrong.join('; ')}${g.error ? ` (${g.error})` : ''}`}\n`));
  const right = grades.filter((g) => g.right).length;
  const page = `# Accuracy

What \`npm run accuracy\` measured: each scenario is a real program under a
real allocator that prints its own truth — what it is and how much — and
leakscope is graded as a user would see it ${GRADE_AT_MS / 1000} s after the
program started (\`leakscope snapshot --json\` at the default thresholds):

- the verdict's cause is the truth's, and rests on the finding named;
- a healthy program has no WARN or ERROR finding at 60 s nor at 75 s;
- the amount the finding states is within the tolerance of the truth.

The programs: test/scenarios/*.c (the suite's own), fixtures/*.c, the Rust
crate's fixtures (fixtures/rust), Tokio services and a Node service; the
catalogue is test/scenarios/catalogue.ts. Two run at a time. \`npm test\`
runs the subset marked for CI (test/accuracy.test.ts).

**${right} of ${grades.length} right** — ${new Date().toISOString().slice(0, 10)}, ${Math.round((Date.now() - started) / 1000)} s, on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${formatBytes(totalmem())}, Node ${process.version}.

${table(grades)}

The growth judge is also graded on 24 synthetic shapes, once a second over
20 minutes of each (docs/growth.md, test/analysis/growth.test.ts), and on a
real redis-server as a peer (test/redis.test.ts).
`;
  if (!only && !args.includes('--ci')) writeFileSync(resolve(PACKAGE_ROOT, 'docs/accuracy.md'), page);
  else process.stdout.write(page);
  process.exitCode = right === grades.length ? 0 : 1;
}

void main();
