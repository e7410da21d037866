// The malloc suite: the agent's overhead on a malloc-heavy two-thread load
// with cross-thread frees, against the same program bare and under
// heaptrack, measured side by side in one run (configurations interleaved;
// each ratio is taken within a round, against that round's baseline, and
// the median of those is reported, so that the machine's slow spells fall
// on both sides of it). Writes the table and the machine into
// docs/benchmarks.md.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { agentLibraryPath, allocatorLibraryPath, PACKAGE_ROOT } from '../../src/paths.js';
import { measuredOn, median, writeSection } from '../page.js';

const BENCH = resolve(PACKAGE_ROOT, 'build/bench/malloc_bench');
// The floor of any LD_PRELOAD hook: forwards the malloc family, counts nothing.
const FORWARD_ONLY = resolve(PACKAGE_ROOT, 'build/bench/libforward_only.so');
const OPS_PER_THREAD = Number(process.env.BENCH_OPS ?? 20_000_000);
// Two threads contend for glibc's arena locks here, and single runs swing by
// up to 50% on a shared 2-vCPU machine: medians of many interleaved runs.
const REPETITIONS = Number(process.env.BENCH_REPETITIONS ?? 21);
const HEAPTRACK_REPETITIONS = Number(process.env.BENCH_HEAPTRACK_REPETITIONS ?? 3);

interface Config {
  readonly name: string;
  readonly baseline: string;
  readonly repetitions: number;
  readonly command: () => { file: string; args: string[]; env: NodeJS.ProcessEnv };
}

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

export function runMallocSuite(): void {
  const scratch = mkdtempSync(join(tmpdir(), 'leakscope-bench-'));
  const plain = (env: NodeJS.ProcessEnv = {}) => () => ({ file: BENCH, args: [String(OPS_PER_THREAD)], env: { ...process.env, ...env } });
  const agent = agentLibraryPath();
  const exact = agentLibraryPath('exact');
  const mimalloc = allocatorLibraryPath('mimalloc');

  const configs: Config[] = [
    { name: 'glibc, bare', baseline: 'glibc, bare', repetitions: REPETITIONS, command: plain() },
    {
      name: 'glibc, forward-only hook (floor)',
      baseline: 'glibc, bare',
      repetitions: REPETITIONS,
      command: plain({ LD_PRELOAD: FORWARD_ONLY }),
    },
    { name: 'glibc, leakscope agent', baseline: 'glibc, bare', repetitions: REPETITIONS, command: plain({ LD_PRELOAD: agent }) },
    {
      name: 'glibc, agent, no stacks',
      baseline: 'glibc, bare',
      repetitions: REPETITIONS,
      command: plain({ LD_PRELOAD: agent, LEAKSCOPE_STACKS: 'off' }),
    },
    {
      name: 'glibc, agent, fp stacks',
      baseline: 'glibc, bare',
      repetitions: REPETITIONS,
      command: plain({ LD_PRELOAD: agent, LEAKSCOPE_STACKS: 'fp' }),
    },
    {
      name: 'glibc, agent, counts exact',
      baseline: 'glibc, bare',
      repetitions: REPETITIONS,
      command: plain({ LD_PRELOAD: exact }),
    },
    { name: 'mimalloc, bare', baseline: 'mimalloc, bare', repetitions: REPETITIONS, command: plain({ LD_PRELOAD: mimalloc! }) },
    {
      name: 'mimalloc, leakscope agent',
      baseline: 'mimalloc, bare',
      repetitions: REPETITIONS,
      command: plain({ LD_PRELOAD: `${agent}:${mimalloc}` }),
    },
    {
      name: 'mimalloc, agent, counts exact',
      baseline: 'mimalloc, bare',
      repetitions: REPETITIONS,
      command: plain({ LD_PRELOAD: `${exact}:${mimalloc}` }),
    },
  ];
  if (hasCommand('heaptrack'))
    configs.push({
      name: 'glibc, heaptrack',
      baseline: 'glibc, bare',
      repetitions: HEAPTRACK_REPETITIONS,
      command: () => ({ file: 'heaptrack', args: ['-o', join(scratch, 'trace'), BENCH, String(OPS_PER_THREAD)], env: process.env }),
    });

  function runOnce(config: Config): number {
    const { file, args, env } = config.command();
    const result = spawnSync(file, args, { env, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    const line = result.stdout.split('\n').find((l) => l.startsWith('{"ops"'));
    if (result.status !== 0 || !line) throw new Error(`${config.name} failed (${result.status}): ${result.stderr.slice(-500)}`);
    for (const f of ['trace.zst', 'trace.gz']) rmSync(join(scratch, f), { force: true });
    return (JSON.parse(line) as { seconds: number }).seconds;
  }

  const times = new Map<string, number[]>(configs.map((c) => [c.name, []]));
  const rounds = Math.max(...configs.map((c) => c.repetitions));
  for (let round = 0; round < rounds; round++) {
    for (const config of configs) {
      if (round >= config.repetitions) continue;
      const seconds = runOnce(config);
      times.get(config.name)!.push(seconds);
      process.stderr.write(`round ${round + 1}/${rounds}  ${config.name.padEnd(28)} ${seconds.toFixed(3)} s\n`);
    }
  }
  rmSync(scratch, { recursive: true, force: true });

  // The median of a configuration's times over another's in the same rounds.
  const ratio = (name: string, to: string) => {
    const mine = times.get(name)!;
    const theirs = times.get(to)!;
    return median(mine.map((seconds, round) => seconds / theirs[round]!));
  };
  const rows = configs.map((c) => {
    const values = times.get(c.name)!;
    const range = `${Math.min(...values).toFixed(3)}–${Math.max(...values).toFixed(3)} s`;
    return `| ${c.name} | ${median(values).toFixed(3)} s | ${range} | ${values.length} | ${ratio(c.name, c.baseline).toFixed(2)}× |`;
  });
  const agentRatio = ratio('glibc, leakscope agent', 'glibc, bare');
  const exactRatio = ratio('glibc, agent, counts exact', 'glibc, bare');
  const verdict = (r: number) => `${r <= 1.1 ? 'met' : 'NOT MET'} (${r.toFixed(2)}×)`;
  const table = [
    measuredOn('npm run bench'),
    '',
    `Load: \`build/bench/malloc_bench ${OPS_PER_THREAD}\` — two threads, ${(2 * OPS_PER_THREAD).toLocaleString('en-US')} allocations of 16–1040 bytes, about half freed by the other thread; the program's own wall clock over interleaved rounds. "vs. bare": each round's time over bare's in the same round, the median of those.`,
    '',
    '| configuration | median | range | runs | vs. bare |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    `The forward-only hook (bench/forward_only.c) passes each call on and does nothing else: what interposing costs on this load before any accounting. The agent (libleakscope.so, counting samples alone) is ${ratio('glibc, leakscope agent', 'glibc, forward-only hook (floor)').toFixed(2)}× of it, and ${ratio('glibc, agent, counts exact', 'glibc, forward-only hook (floor)').toFixed(2)}× of it counting every call (\`leakscope run --counts exact\`, libleakscope-exact.so).`,
    '',
    `Budget: the agent ≤ 1.10× → ${verdict(agentRatio)}. Counting every call (\`--counts exact\`): ${exactRatio.toFixed(2)}×.`,
  ].join('\n');

  writeSection('malloc', table);
  process.stdout.write(`${table}\n`);
  runStackCostSuite();
}

/**
 * What one stack costs: the same load with a sample and a stack every 4 KiB
 * (16× the samples, 128× the stacks of the defaults), stacks off, walked
 * with DWARF (libgcc's unwinder) and with frame pointers, interleaved. The
 * extra time of each walk over "off", in CPU seconds (two threads busy), per
 * stack taken.
 */
function runStackCostSuite(): void {
  const ops = Number(process.env.BENCH_STACK_OPS ?? 5_000_000);
  const rounds = Number(process.env.BENCH_STACK_REPETITIONS ?? 9);
  const interval = 4096;
  const meanBlock = (16 + 1040) / 2;
  const stacks = (2 * ops * meanBlock) / interval;
  const walks = ['off', 'dwarf', 'fp'] as const;
  const times = new Map<string, number[]>(walks.map((w) => [w, []]));
  for (let round = 0; round < rounds; round++) {
    for (const walk of walks) {
      const env = { ...process.env, LD_PRELOAD: agentLibraryPath(), LEAKSCOPE_STACKS: walk, LEAKSCOPE_SAMPLE_INTERVAL: String(interval), LEAKSCOPE_STACK_INTERVAL: String(interval) };
      const result = spawnSync(BENCH, [String(ops)], { env, encoding: 'utf8' });
      const line = result.stdout.split('\n').find((l) => l.startsWith('{"ops"'));
      if (result.status !== 0 || !line) throw new Error(`stacks ${walk} failed (${result.status}): ${result.stderr.slice(-500)}`);
      times.get(walk)!.push((JSON.parse(line) as { seconds: number }).seconds);
    }
  }
  const perStack = (walk: string) =>
    median(times.get(walk)!.map((seconds, round) => ((seconds - times.get('off')![round]!) * 2 * 1e6) / stacks));
  const table = [
    measuredOn('npm run bench -- malloc'),
    '',
    `Load: \`build/bench/malloc_bench ${ops}\` with LEAKSCOPE_SAMPLE_INTERVAL=LEAKSCOPE_STACK_INTERVAL=${interval}: about ${Math.round(stacks).toLocaleString('en-US')} stacks taken per run, ${rounds} interleaved rounds. Cost per stack: the run's extra time over stacks off, × 2 busy threads, ÷ stacks (median of the rounds).`,
    '',
    '| unwinder | median run | cost per stack |',
    '|---|---|---|',
    ...walks.map((w) => `| ${w} | ${median(times.get(w)!).toFixed(3)} s | ${w === 'off' ? '—' : `${perStack(w).toFixed(2)} µs`} |`),
    '',
    'At the defaults (a sample per ~64 KiB, a stack for one sample in eight: ~512 KiB) the malloc load above takes about one stack per 1,000 allocations.',
    '',
    'malloc_bench is built without frame pointers, as most programs are: there the frame-pointer walk stops within a frame or two (which is why it is cheap, and why it is not the default), so its figure is the floor of the walk, not its cost on a program built with -fno-omit-frame-pointer.',
  ].join('\n');
  writeSection('stacks', table);
  process.stdout.write(`${table}\n`);
}
