// The malloc family keeps every promise of the C library under the agent,
// whichever way it keeps its samples: with headers before sampled blocks
// (LD_PRELOAD over glibc), or in its table (other allocators, or
// LEAKSCOPE_SAMPLE_HEADERS=off). The fixture checks alignment, usable sizes,
// zeroed memory, contents across realloc, errors, libc growing the program's
// blocks, and a forked child freeing its parent's; it fills every block to
// its last usable byte, so a wrong size would corrupt glibc's heap.
import { resolve } from 'node:path';
import test from 'ava';
import { FIXTURES, runCli } from './helpers/process.js';

const FAMILY = resolve(FIXTURES, 'malloc_family');
const ROUNDS = '600';

interface FamilyTruth {
  rounds: number;
  checks: number;
  failures: string[];
}

function truthOf(stdout: string): FamilyTruth {
  const line = stdout.split('\n').find((l) => l.startsWith('{"ready":true'));
  if (!line) throw new Error(`no truth line in: ${stdout.slice(0, 300)}`);
  return JSON.parse(line) as FamilyTruth;
}

// Both builds of the preload library: counting every call (--counts exact),
// and counting samples alone (the default), whose hooks take other paths.
const CASES = [
  { allocator: 'glibc', interval: 'exact', counts: 'exact', env: {} },
  { allocator: 'glibc', interval: '65536', counts: 'exact', env: {} },
  { allocator: 'glibc', interval: 'exact', counts: 'exact', env: { LEAKSCOPE_SAMPLE_HEADERS: 'off' } },
  { allocator: 'mimalloc', interval: 'exact', counts: 'exact', env: {} },
  { allocator: 'jemalloc', interval: 'exact', counts: 'exact', env: {} },
  { allocator: 'glibc', interval: 'exact', counts: 'sampled', env: {} },
  { allocator: 'glibc', interval: '65536', counts: 'sampled', env: {} },
  { allocator: 'glibc', interval: '65536', counts: 'sampled', env: { LEAKSCOPE_SAMPLE_HEADERS: 'off' } },
  { allocator: 'mimalloc', interval: '4096', counts: 'sampled', env: {} },
  { allocator: 'jemalloc', interval: 'exact', counts: 'sampled', env: {} },
] as const;

for (const { allocator, interval, counts, env } of CASES) {
  const headers = 'LEAKSCOPE_SAMPLE_HEADERS' in env ? ', sample headers off' : '';
  test(`every promise holds under ${allocator}, sampling ${interval}, counts ${counts}${headers}`, async (t) => {
    const args = ['run', '--allocator', allocator, '--sample-interval', interval, '--counts', counts, '--', FAMILY, ROUNDS];
    const result = await runCli(args, { env });
    t.regex(result.stderr, /agent loaded into pid \d+/);
    const truth = truthOf(result.stdout);
    t.deepEqual(truth.failures, []);
    t.is(truth.rounds, Number(ROUNDS));
    t.true(truth.checks > 10 * truth.rounds, `${truth.checks} checks`);
    t.is(result.code, 0);
  });
}

test('the fixture holds without the agent too', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const result = spawnSync(FAMILY, ['50'], { encoding: 'utf8' });
  t.is(result.status, 0);
  t.deepEqual(truthOf(result.stdout).failures, []);
});
