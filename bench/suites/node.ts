// The node suite. (1) HTTP throughput of the Node quote service
// (fixtures/node/service.mjs, GET /quote: an await chain that settles) bare,
// attached by pid through the inspector (leakscope snapshot, then load while
// it records), and started under `leakscope run` — interleaved rounds, the
// server pinned to CPU 0 and the load (fixtures/rust http_load) to CPU 1.
// (2) An await-heavy microbenchmark: bare, with leakscope's bridge, and with
// an async_hooks tracker, in one run.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { cpuMs, measuredOn, median, writeSection } from '../page.js';

const CLI = resolve(PACKAGE_ROOT, 'bin/leakscope.js');
const SERVICE = resolve(PACKAGE_ROOT, 'fixtures/node/service.mjs');
const BRIDGE = resolve(PACKAGE_ROOT, 'dist/src/node-agent/bridge.cjs');
const AWAIT_BENCH = resolve(PACKAGE_ROOT, 'bench/await_bench.mjs');
const HTTP_LOAD = resolve(PACKAGE_ROOT, 'build/cargo/release/http_load');
const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 9);
const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 4);
const WARMUP_SECONDS = 1;
const CONNECTIONS = 32;
const AWAIT_ROUNDS = Number(process.env.BENCH_AWAIT_ROUNDS ?? 5);

type Setup = 'bare' | 'attached' | 'run';

async function startService(setup: Setup): Promise<{ child: ChildProcess; port: number; pid: number }> {
  const command = setup === 'run' ? [process.execPath, CLI, 'run', '-q', '--', process.execPath, SERVICE] : [process.execPath, SERVICE];
  const child = spawn('taskset', ['-c', '0', ...command], { stdio: ['ignore', 'pipe', 'ignore'] });
  const ready = await new Promise<{ port: number; pid: number }>((resolveReady, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith('{"ready":true')) resolveReady(JSON.parse(line) as { port: number; pid: number });
    });
    child.once('exit', (code) => reject(new Error(`the service (${setup}) exited (${code}) before it was ready`)));
  });
  if (setup === 'attached') {
    // Attach as a user would, and keep it recording through the load.
    const attach = spawnSync(process.execPath, [CLI, 'snapshot', String(ready.pid), '--linger', '10m'], { encoding: 'utf8' });
    if (attach.status !== 0) throw new Error(`attaching failed: ${attach.stderr}`);
  }
  return { child, ...ready };
}

interface Run {
  /** Requests a second. */
  readonly rate: number;
  /** The service's CPU time per request, µs: steadier than throughput on a shared machine. */
  readonly cpuUs: number;
}

async function throughput(setup: Setup): Promise<Run> {
  const { child, port, pid } = await startService(setup);
  try {
    // Every setup gets the same warm-up (JIT, connections; attached: the
    // first sampling decisions), so that what is compared is a service's
    // steady state.
    spawnSync('taskset', ['-c', '1', HTTP_LOAD, String(port), String(WARMUP_SECONDS), String(CONNECTIONS), '/quote'], { encoding: 'utf8' });
    const cpuBefore = cpuMs(pid);
    const load = spawnSync('taskset', ['-c', '1', HTTP_LOAD, String(port), String(SECONDS), String(CONNECTIONS), '/quote'], { encoding: 'utf8' });
    const line = load.stdout.split('\n').find((l) => l.startsWith('{"requests"'));
    if (load.status !== 0 || !line) throw new Error(`http_load against ${setup} failed: ${load.stderr.slice(-400)}`);
    const result = JSON.parse(line) as { requests: number; seconds: number; errors: number };
    if (result.errors > 0) throw new Error(`${setup}: ${result.errors} connections failed`);
    return { rate: result.requests / result.seconds, cpuUs: ((cpuMs(pid) - cpuBefore) * 1000) / result.requests };
  } finally {
    process.kill(pid, 'SIGKILL');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
  }
}

const SETUP_NAMES: Readonly<Record<Setup, string>> = {
  bare: 'bare',
  attached: 'attached by pid (inspector), recording',
  run: 'leakscope run (LD_PRELOAD agent + bridge)',
};

async function httpSection(): Promise<string> {
  const setups: Setup[] = ['bare', 'attached', 'run'];
  const rates = new Map<Setup, number[]>(setups.map((s) => [s, []]));
  const cpu = new Map<Setup, number[]>(setups.map((s) => [s, []]));
  for (let round = 0; round < ROUNDS; round++)
    for (const setup of setups) {
      const run = await throughput(setup);
      rates.get(setup)!.push(run.rate);
      cpu.get(setup)!.push(run.cpuUs);
      process.stderr.write(
        `node http round ${round + 1}/${ROUNDS}  ${SETUP_NAMES[setup].padEnd(44)} ${Math.round(run.rate)} req/s  ${run.cpuUs.toFixed(1)} µs CPU/req\n`,
      );
    }
  const bare = median(rates.get('bare')!);
  const bareCpu = median(cpu.get('bare')!);
  const rows = setups.map((s) => {
    const values = rates.get(s)!;
    const m = median(values);
    const c = median(cpu.get(s)!);
    const fmt = (v: number) => Math.round(v).toLocaleString('en-US');
    return (
      `| ${SETUP_NAMES[s]} | ${fmt(m)} req/s | ${fmt(Math.min(...values))}–${fmt(Math.max(...values))} | ${(m / bare).toFixed(2)}× ` +
      `| ${c.toFixed(1)} µs | ${(bareCpu / c).toFixed(2)}× |`
    );
  });
  const attached = median(rates.get('attached')!) / bare;
  const attachedCpu = bareCpu / median(cpu.get('attached')!);
  return [
    `Load: \`http_load PORT ${SECONDS} ${CONNECTIONS} /quote\` — ${CONNECTIONS} keep-alive connections against the Node quote service (each request awaits a chain of three async calls), pinned to CPU 0; the load on CPU 1; after ${WARMUP_SECONDS} s of the same load as warm-up, for every setup. Median of ${ROUNDS} interleaved rounds; ratio against bare.`,
    '',
    'The last two columns: the service\'s own CPU time per request (user + system, from /proc) and bare\'s over it — what leakscope adds per request, steadier than throughput when the machine\'s neighbours are busy.',
    '',
    '| service | throughput | range | ratio | CPU per request | ratio |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    `Budget: attached ≥ 0.90× bare → ${attached >= 0.9 ? 'met' : `NOT MET (${attached.toFixed(2)}×)`} in throughput; ${attachedCpu.toFixed(2)}× in CPU per request.`,
  ].join('\n');
}

function awaitOnce(mode: string): number {
  const result = spawnSync('taskset', ['-c', '0', process.execPath, AWAIT_BENCH, mode, BRIDGE], { encoding: 'utf8' });
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"mode"'));
  if (result.status !== 0 || !line) throw new Error(`await_bench ${mode} failed (${result.status}): ${result.stderr.slice(-400)}`);
  return (JSON.parse(line) as { ms: number }).ms;
}

function awaitSection(): string {
  const modes = ['bare', 'leakscope', 'async_hooks'] as const;
  const times = new Map<string, number[]>(modes.map((m) => [m, []]));
  for (let round = 0; round < AWAIT_ROUNDS; round++)
    for (const mode of modes) {
      times.get(mode)!.push(awaitOnce(mode));
      process.stderr.write(`await round ${round + 1}/${AWAIT_ROUNDS}  ${mode.padEnd(12)} ${times.get(mode)!.at(-1)!.toFixed(0)} ms\n`);
    }
  const [bare, ours, hooks] = modes.map((m) => median(times.get(m)!)) as [number, number, number];
  const row = (name: string, mode: string) => {
    const values = times.get(mode)!;
    return `| ${name} | ${median(values).toFixed(0)} ms | ${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)} ms | ${(median(values) / bare).toFixed(2)}× |`;
  };
  const cheaper = (hooks - bare) / Math.max(1e-9, ours - bare);
  return [
    `Load: \`node bench/await_bench.mjs MODE\` — 1,000,000 calls of an async function that awaits two others (about 4 promises each), after a warm-up; pinned to CPU 0. Median of ${AWAIT_ROUNDS} interleaved runs.`,
    '',
    '| tracker | wall | range | ratio |',
    '|---|---|---|---|',
    row('none', 'bare'),
    row('leakscope bridge (v8.promiseHooks, sampled sites)', 'leakscope'),
    row('async_hooks tracker (init/promiseResolve/destroy into a Map)', 'async_hooks'),
    '',
    `leakscope's added time is ${cheaper.toFixed(1)}× smaller than the async_hooks tracker's (${(ours - bare).toFixed(0)} ms against ${(hooks - bare).toFixed(0)} ms); in wall time the tracker is ${(hooks / ours).toFixed(1)}× slower.`,
    `Budget: at least 5× cheaper than async_hooks → ${cheaper >= 5 ? 'met' : `NOT MET (${cheaper.toFixed(1)}×)`}.`,
  ].join('\n');
}

export async function runNodeSuite(): Promise<void> {
  const http = await httpSection();
  const awaits = awaitSection();
  const body = [measuredOn('npm run bench -- node'), '', '### HTTP throughput of the Node service', '', http, '', '### Await-heavy microbenchmark', '', awaits].join('\n');
  writeSection('node', body);
  process.stdout.write(`${body}\n`);
}
