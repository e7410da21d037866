// The rust suite. (1) HTTP throughput of the Tokio quote service
// (fixtures/rust/src/service.rs, healthy twin), each built as a service that
// takes that much of leakscope would be: bare and with leakscope's allocator
// wrapper alone (both without tokio_unstable, as a service runs today), with
// the wrapper and leakscope's Tokio runtime hooks (without Tokio's tracing;
// and again with it, as the layer's build has it), with
// tracing's registry and a layer that does nothing (the floor under any
// layer on Tokio's task spans), with the wrapper and leakscope's Tokio
// layer, and with console-subscriber — interleaved rounds,
// the server pinned to CPU 0 and the load (fixtures/rust/src/bin/http_load.rs)
// to CPU 1, throughput and the service's CPU time per request. (2) What
// tracking one task costs (fixtures/rust/src/bin/spawn_storm.rs): no
// tracking, the runtime hooks, the layer. (3) The allocator wrapper on an
// allocation-heavy load with cross-thread frees, no client attached:
// MiMalloc against Tracked<MiMalloc>.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { cpuMs, measuredOn, median, writeSection } from '../page.js';

const RELEASE = resolve(PACKAGE_ROOT, 'build/cargo/release');
const BARE_TARGET = resolve(PACKAGE_ROOT, 'build/cargo-bare');
/** The services built as one that takes only the runtime hooks (`npm run build:rust-hooks`). */
const HOOKS_RELEASE = resolve(PACKAGE_ROOT, 'build/cargo-hooks/release');
const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 4);
const WARMUP_SECONDS = 1;
const CONNECTIONS = 32;
const CHURN_OPS = Number(process.env.BENCH_CHURN_OPS ?? 10_000_000);
const CHURN_ROUNDS = Number(process.env.BENCH_CHURN_ROUNDS ?? 7);

interface Server {
  readonly name: string;
  readonly binary: string;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * The quote service without --cfg tokio_unstable, as a service runs today:
 * bare, and with only the allocator wrapper.
 */
function buildBare(): { bare: string; wrapper: string } {
  const build = spawnSync(
    'cargo',
    ['build', '--release', '--quiet', '--bin', 'http_bare', '--bin', 'http_healthy', '--manifest-path', resolve(PACKAGE_ROOT, 'fixtures/rust/Cargo.toml'), '--target-dir', BARE_TARGET],
    { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, RUSTFLAGS: '' } },
  );
  if (build.status !== 0) throw new Error('building the quote service without tokio_unstable failed');
  return { bare: resolve(BARE_TARGET, 'release/http_bare'), wrapper: resolve(BARE_TARGET, 'release/http_healthy') };
}

async function startServer(server: Server): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn('taskset', ['-c', '0', server.binary], { env: { ...process.env, ...server.env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolvePort, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith('{"ready":true')) resolvePort((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`${server.name} exited (${code}) before it was ready`)));
  });
  return { child, port };
}

interface Run {
  /** Requests a second. */
  readonly rate: number;
  /** The service's CPU time per request, µs: steadier than throughput on a shared machine. */
  readonly cpuUs: number;
}

function load(port: number, seconds: number, server: Server): { requests: number; seconds: number } {
  const run = spawnSync('taskset', ['-c', '1', resolve(RELEASE, 'http_load'), String(port), String(seconds), String(CONNECTIONS)], { encoding: 'utf8' });
  const line = run.stdout.split('\n').find((l) => l.startsWith('{"requests"'));
  if (run.status !== 0 || !line) throw new Error(`http_load against ${server.name} failed: ${run.stderr.slice(-400)}`);
  const result = JSON.parse(line) as { requests: number; seconds: number; errors: number };
  if (result.errors > 0) throw new Error(`${server.name}: ${result.errors} connections failed`);
  return result;
}

async function throughput(server: Server): Promise<Run> {
  const { child, port } = await startServer(server);
  try {
    load(port, WARMUP_SECONDS, server); // the same warm-up for every service: connections, caches, the site handles
    const cpuBefore = cpuMs(child.pid!);
    const result = load(port, SECONDS, server);
    return { rate: result.requests / result.seconds, cpuUs: ((cpuMs(child.pid!) - cpuBefore) * 1000) / result.requests };
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
  }
}

async function httpSection(): Promise<string> {
  const builds = buildBare();
  const servers: Server[] = [
    { name: 'bare (no tokio_unstable)', binary: builds.bare, env: {} },
    { name: 'leakscope: allocator wrapper only', binary: builds.wrapper, env: { LEAKSCOPE_FIXTURE_LAYER: '0' } },
    { name: 'wrapper only, Tokio built with tokio_unstable', binary: resolve(HOOKS_RELEASE, 'http_healthy'), env: { LEAKSCOPE_FIXTURE_LAYER: '0' } },
    { name: 'leakscope: wrapper + runtime hooks', binary: resolve(HOOKS_RELEASE, 'http_healthy'), env: { LEAKSCOPE_FIXTURE_TASKS: 'hooks' } },
    { name: 'wrapper + runtime hooks, Tokio built with tracing', binary: resolve(RELEASE, 'http_healthy'), env: { LEAKSCOPE_FIXTURE_TASKS: 'hooks' } },
    { name: 'floor: wrapper + registry + a layer that does nothing', binary: resolve(RELEASE, 'http_healthy'), env: { LEAKSCOPE_FIXTURE_LAYER: 'floor' } },
    { name: 'leakscope: wrapper + Tokio layer', binary: resolve(RELEASE, 'http_healthy'), env: {} },
    { name: 'console-subscriber', binary: resolve(RELEASE, 'http_console'), env: { TOKIO_CONSOLE_BIND: '127.0.0.1:0' } },
  ];
  const runs = new Map<string, Run[]>(servers.map((s) => [s.name, []]));
  for (let round = 0; round < ROUNDS; round++)
    for (const server of servers) {
      const run = await throughput(server);
      runs.get(server.name)!.push(run);
      process.stderr.write(`http round ${round + 1}/${ROUNDS}  ${server.name.padEnd(44)} ${Math.round(run.rate)} req/s  ${run.cpuUs.toFixed(2)} µs CPU/req\n`);
    }
  const rate = (name: string) => median(runs.get(name)!.map((r) => r.rate));
  const cpu = (name: string) => median(runs.get(name)!.map((r) => r.cpuUs));
  const bare = servers[0]!.name;
  // Ratios and differences are taken within each round, then the median
  // over rounds: the host's speed drifts between rounds more than the
  // services differ within one.
  const paired = (name: string, over: string, f: (x: Run, y: Run) => number) =>
    median(runs.get(name)!.map((run, round) => f(run, runs.get(over)![round]!)));
  const rateRatio = (name: string) => paired(name, bare, (x, y) => x.rate / y.rate);
  const cpuRatio = (name: string) => paired(name, bare, (x, y) => y.cpuUs / x.cpuUs);
  const rows = servers.map((s) => {
    const rates = runs.get(s.name)!.map((r) => r.rate);
    const low = Math.round(Math.min(...rates)).toLocaleString('en-US');
    const high = Math.round(Math.max(...rates)).toLocaleString('en-US');
    return `| ${s.name} | ${Math.round(rate(s.name)).toLocaleString('en-US')} req/s | ${low}–${high} | ${rateRatio(s.name).toFixed(2)}× | ${cpu(s.name).toFixed(2)} µs | ${cpuRatio(s.name).toFixed(2)}× |`;
  });
  const [wrapper, unstable, hooks, hooksTraced, floor, layer] = servers.slice(1, 7).map((s) => s.name) as [string, string, string, string, string, string];
  const added = (name: string, over: string) => paired(name, over, (x, y) => x.cpuUs - y.cpuUs).toFixed(2);
  const verdict = (name: string) => {
    const ratios = `${rateRatio(name).toFixed(2)}× throughput, ${cpuRatio(name).toFixed(2)}× CPU per request`;
    return rateRatio(name) >= 0.95 ? `met (${ratios})` : `NOT MET (${ratios})`;
  };
  return [
    `Load: \`http_load PORT ${SECONDS} ${CONNECTIONS}\` — ${CONNECTIONS} keep-alive connections, each sending \`GET /quote\` and reading the response before the next, for ${SECONDS} s after ${WARMUP_SECONDS} s of the same load as warm-up; the service (healthy twin: each request spawns a task that ends with it) pinned to CPU 0, the load to CPU 1. Medians of ${ROUNDS} interleaved rounds; ratios (and differences) against bare within each round, then their median.`,
    '',
    "The last two columns: the service's own CPU time per request (user + system, from /proc) and bare's over it — steadier than throughput when the machine's neighbours are busy. Each row is built as a service that takes that much of leakscope would be. Bare and the wrapper-only row: without `--cfg tokio_unstable`; the row after them is the wrapper alone in the build the hooks need (`--cfg tokio_unstable`, no hooks), which a service pays for to use them. The runtime hooks row: Tokio's runtime hooks (`leakscope::runtime_hooks`), `--cfg tokio_unstable` and no tracing at all (the fixtures' `layer` feature off, so Tokio's `tracing` feature is off): no spans, no names, no wakers. The row after it is the same hooks in the build the layer needs (Tokio's `tracing` feature on, no subscriber). The floor row is the allocator wrapper with tracing's registry and a layer that does nothing, filtered to the same Tokio callsites as leakscope's: Tokio making a span per task and entering it for each poll, and the registry keeping it — what any layer on Tokio's task spans costs before it does work of its own.",
    '',
    '| service | throughput | range | ratio | CPU per request | ratio |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    `Budget: leakscope ≥ 0.95× bare. Wrapper + runtime hooks: ${verdict(hooks)}; wrapper + layer: ${verdict(layer)}.`,
    '',
    `Of the CPU per request: the allocator wrapper adds ${added(wrapper, bare)} µs; the runtime hooks ${added(hooks, wrapper)} µs over the wrapper, of which building Tokio with \`tokio_unstable\` is ${added(unstable, wrapper)} µs and the hooks themselves ${added(hooks, unstable)} µs (Tokio's tracing instrumentation, built in with no subscriber, ${added(hooksTraced, hooks)} µs more). The layer adds ${added(layer, wrapper)} µs over the wrapper: Tokio's task spans in tracing's registry (the floor under any layer) ${added(floor, wrapper)} µs, the layer's own work ${added(layer, floor)} µs.`,
  ].join('\n');
}

const STORM_TASKS = 1_000_000;
const STORM_ROUNDS = Number(process.env.BENCH_STORM_ROUNDS ?? 5);

function stormOnce(binary: string, mode: string): number {
  const result = spawnSync('taskset', ['-c', '0', binary, String(STORM_TASKS)], {
    encoding: 'utf8',
    env: { ...process.env, LEAKSCOPE_FIXTURE_TASKS: mode },
  });
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"tasks"'));
  if (result.status !== 0 || !line) throw new Error(`spawn_storm (${mode || 'no tracking'}) failed (${result.status}): ${result.stderr.slice(-400)}`);
  return (JSON.parse(line) as { ns_per_task: number }).ns_per_task;
}

/** What tracking one task costs: spawn_storm without tracking, with the hooks, with the layer. */
function perTaskSection(): string {
  const modes = [
    { binary: resolve(HOOKS_RELEASE, 'spawn_storm'), mode: '', name: 'no task tracking (allocator wrapper only)' },
    { binary: resolve(HOOKS_RELEASE, 'spawn_storm'), mode: 'hooks', name: 'leakscope: runtime hooks' },
    { binary: resolve(RELEASE, 'spawn_storm'), mode: 'layer', name: 'leakscope: Tokio layer (tracing registry)' },
  ];
  const ns = modes.map(() => [] as number[]);
  for (let round = 0; round < STORM_ROUNDS; round++)
    modes.forEach(({ binary, mode, name }, i) => {
      ns[i]!.push(stormOnce(binary, mode));
      process.stderr.write(`storm round ${round + 1}/${STORM_ROUNDS}  ${name.padEnd(44)} ${ns[i]!.at(-1)!.toFixed(1)} ns/task\n`);
    });
  const added = (i: number) => median(ns[i]!.map((value, round) => value - ns[0]![round]!));
  const rows = modes.map(({ name }, i) => `| ${name} | ${median(ns[i]!).toFixed(0)} ns | ${i === 0 ? '—' : `${added(i).toFixed(0)} ns`} |`);
  return [
    `Load: \`spawn_storm ${STORM_TASKS}\` — ${STORM_TASKS.toLocaleString('en-US')} tasks on a current-thread runtime, in batches of 50, each polled twice (it yields once) and ended; the second of two rounds, so the agent's records are reused as in a running service. No tracking and the hooks: built with \`--cfg tokio_unstable\` and without Tokio's tracing; the layer: with both. Pinned to CPU 0; median of ${STORM_ROUNDS} interleaved runs; "added" is the difference within each round, then its median.`,
    '',
    '| task tracking | per task | added |',
    '|---|---|---|',
    ...rows,
  ].join('\n');
}

function churnOnce(binary: string): number {
  const result = spawnSync(resolve(RELEASE, binary), [String(CHURN_OPS)], { encoding: 'utf8' });
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"ops"'));
  if (result.status !== 0 || !line) throw new Error(`${binary} failed (${result.status}): ${result.stderr.slice(-400)}`);
  return (JSON.parse(line) as { seconds: number }).seconds;
}

function churnSection(): string {
  const times: Record<'churn_bare' | 'churn_tracked', number[]> = { churn_bare: [], churn_tracked: [] };
  for (let round = 0; round < CHURN_ROUNDS; round++)
    for (const binary of ['churn_bare', 'churn_tracked'] as const) {
      times[binary].push(churnOnce(binary));
      process.stderr.write(`churn round ${round + 1}/${CHURN_ROUNDS}  ${binary} ${times[binary].at(-1)!.toFixed(3)} s\n`);
    }
  const bare = median(times.churn_bare);
  const tracked = median(times.churn_tracked);
  const row = (name: string, values: number[]) =>
    `| ${name} | ${median(values).toFixed(3)} s | ${Math.min(...values).toFixed(3)}–${Math.max(...values).toFixed(3)} s | ${(median(values) / bare).toFixed(2)}× |`;
  return [
    `Load: \`churn_bare|churn_tracked ${CHURN_OPS}\` — two threads, ${CHURN_OPS.toLocaleString('en-US')} allocations of 16–1024 bytes each, every eighth freed by the other thread; no leakscope client attached. Median of ${CHURN_ROUNDS} interleaved runs.`,
    '',
    '| global allocator | wall | range | ratio |',
    '|---|---|---|---|',
    row('MiMalloc', times.churn_bare),
    row('leakscope::Tracked<MiMalloc>', times.churn_tracked),
    '',
    `The wrapper costs ${((tracked / bare - 1) * 100).toFixed(0)} % on this load (${(((tracked - bare) / (CHURN_OPS * 2)) * 1e9).toFixed(1)} ns per allocation and free). The agent records from the first allocation whether or not a client is attached, so that a later snapshot sees which thread owns which blocks; attaching adds nothing to this path.`,
  ].join('\n');
}

export async function runRustSuite(): Promise<void> {
  const http = await httpSection();
  const perTask = perTaskSection();
  const churn = churnSection();
  const body = [
    measuredOn('npm run bench -- rust'),
    '',
    '### HTTP throughput of the Tokio service',
    '',
    http,
    '',
    '### What tracking costs per task',
    '',
    perTask,
    '',
    '### The allocator wrapper alone',
    '',
    churn,
  ].join('\n');
  writeSection('rust', body);
  process.stdout.write(`${body}\n`);
}
