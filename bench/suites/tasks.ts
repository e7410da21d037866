// The tasks suite. (1) The task ABI's cost per call, one and two threads,
// against the same loops with no agent (the weak symbols are null: an empty
// loop). (2) A snapshot of a target with 100,000 live tasks and 200 worker
// threads: end-to-end time of `leakscope snapshot`, the request alone, and
// how late the target's threads woke up meanwhile, beside windows with no
// snapshot.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { observe, withConnection } from '../../src/conn/attach.js';
import { agentLibraryPath, PACKAGE_ROOT } from '../../src/paths.js';
import { measuredOn, median, writeSection } from '../page.js';

const ABI_BENCH = resolve(PACKAGE_ROOT, 'build/bench/task_abi_bench');
const MANY_TASKS = resolve(PACKAGE_ROOT, 'build/bench/many_tasks');
const CLI = resolve(PACKAGE_ROOT, 'bin/leakscope.js');
const TASKS_PER_THREAD = Number(process.env.BENCH_TASKS ?? 200_000);
const ABI_ROUNDS = Number(process.env.BENCH_ABI_ROUNDS ?? 3);
const SNAPSHOT_ROUNDS = Number(process.env.BENCH_SNAPSHOT_ROUNDS ?? 5);
const WORKERS = 200;
const LIVE_TASKS = 100_000;
const SITES = 100;

const PHASES = ['spawn_ns', 'poll_ns', 'wake_ns', 'complete_ns', 'respawn_ns'] as const;
type AbiResult = Record<(typeof PHASES)[number], number>;

function runAbi(threads: number, withAgent: boolean): AbiResult {
  const env = { ...process.env, LEAKSCOPE_TASK_RETAIN_MAX: '0', ...(withAgent ? { LD_PRELOAD: agentLibraryPath() } : {}) };
  const result = spawnSync(ABI_BENCH, [String(threads), String(TASKS_PER_THREAD)], { env, encoding: 'utf8' });
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"threads"'));
  if (result.status !== 0 || !line) throw new Error(`task_abi_bench failed (${result.status}): ${result.stderr.slice(-400)}`);
  const parsed = JSON.parse(line) as AbiResult & { agent: boolean };
  if (parsed.agent !== withAgent) throw new Error(`task_abi_bench: agent ${parsed.agent}, expected ${withAgent}`);
  return parsed;
}

function abiSection(): string {
  const rows: string[] = [];
  for (const threads of [1, 2]) {
    const runs: Record<'bare' | 'agent', AbiResult[]> = { bare: [], agent: [] };
    for (let round = 0; round < ABI_ROUNDS; round++)
      for (const kind of ['bare', 'agent'] as const) {
        runs[kind].push(runAbi(threads, kind === 'agent'));
        process.stderr.write(`abi ${threads} thread(s) ${kind} round ${round + 1}/${ABI_ROUNDS}\n`);
      }
    for (const phase of PHASES) {
      const bare = median(runs.bare.map((r) => r[phase]));
      const agent = median(runs.agent.map((r) => r[phase]));
      rows.push(`| ${threads} | ${phase.replace(/_ns$/, '')} | ${bare.toFixed(1)} ns | ${agent.toFixed(1)} ns | ${(agent - bare).toFixed(1)} ns |`);
    }
  }
  return [
    `Load: \`build/bench/task_abi_bench THREADS ${TASKS_PER_THREAD}\` — each thread spawns ${TASKS_PER_THREAD.toLocaleString('en-US')} tasks over 8 sites, polls each once (poll = poll_begin + poll_end), wakes each, completes each, and three seconds later spawns as many again into the records the agent recycled (respawn). Wall time of each phase per call on one thread, median of ${ABI_ROUNDS} interleaved runs; "bare" is the same loop without the agent, where the weak ABI symbols are null.`,
    '',
    '| threads | call | bare | leakscope | added |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

class Target {
  private readonly lines: Interface;
  private readonly waiting: ((line: string) => void)[] = [];

  constructor(readonly child: ChildProcess) {
    this.lines = createInterface({ input: child.stdout! });
    this.lines.on('line', (line) => this.waiting.shift()?.(line));
  }

  next(): Promise<string> {
    return new Promise((resolveLine) => this.waiting.push(resolveLine));
  }

  async command(text: string): Promise<string> {
    const reply = this.next();
    this.child.stdin!.write(`${text}\n`);
    return reply;
  }
}

function runCli(args: readonly string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += String(chunk)));
    child.once('close', (code) => resolveRun({ code, stdout }));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function snapshotSection(): Promise<string> {
  const child = spawn(MANY_TASKS, [String(WORKERS), String(LIVE_TASKS), String(SITES)], {
    env: { ...process.env, LD_PRELOAD: agentLibraryPath() },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const target = new Target(child);
  try {
    const ready = JSON.parse(await target.next()) as { pid: number };
    await sleep(2500); // some history
    const endToEnd: number[] = [];
    const request: number[] = [];
    const quietLate: number[] = [];
    const snapshotLate: number[] = [];
    let checked = '';
    for (let round = 0; round < SNAPSHOT_ROUNDS; round++) {
      await target.command('reset');
      await sleep(1500);
      quietLate.push((JSON.parse(await target.command('report')) as { max_late_ms: number }).max_late_ms);

      await target.command('reset');
      const started = performance.now();
      const result = await runCli(['snapshot', String(ready.pid), '--json']);
      endToEnd.push(performance.now() - started);
      await sleep(Math.max(0, 1500 - (performance.now() - started)));
      snapshotLate.push((JSON.parse(await target.command('report')) as { max_late_ms: number }).max_late_ms);
      if (result.code !== 0) throw new Error('leakscope snapshot failed');
      const snapshot = JSON.parse(result.stdout) as { tasks: { live: number }; process: { threads: number } };
      checked = `${snapshot.tasks.live.toLocaleString('en-US')} live tasks and ${snapshot.process.threads} threads in the snapshot, ${(result.stdout.length / 1024).toFixed(0)} KiB of JSON`;

      const t0 = performance.now();
      await withConnection(ready.pid, (c) => observe(c));
      request.push(performance.now() - t0);
      process.stderr.write(`snapshot round ${round + 1}/${SNAPSHOT_ROUNDS}: ${endToEnd.at(-1)!.toFixed(0)} ms\n`);
    }
    const fmt = (values: number[]) => `${median(values).toFixed(1)} ms (max ${Math.max(...values).toFixed(1)})`;
    const addedStall = Math.max(...snapshotLate) - Math.max(...quietLate);
    return [
      `Target: \`build/bench/many_tasks ${WORKERS} ${LIVE_TASKS} ${SITES}\` under the agent — ${WORKERS} worker threads holding ${LIVE_TASKS.toLocaleString('en-US')} live tasks over ${SITES} sites; every 5 ms each worker polls one of its tasks (allocating inside the poll) and records how late its sleep ended. ${checked}. ${SNAPSHOT_ROUNDS} rounds; each compares a 1.5 s window with one \`leakscope snapshot --json\` in it to a 1.5 s window without.`,
      '',
      '| measure | median (max) |',
      '|---|---|',
      `| \`leakscope snapshot <pid> --json\`, end to end (Node start included) | ${fmt(endToEnd)} |`,
      `| the snapshot request alone (connect, agent work, transfer, parse) | ${fmt(request)} |`,
      `| worst lateness of any worker thread, window without a snapshot | ${fmt(quietLate)} |`,
      `| worst lateness of any worker thread, window with a snapshot | ${fmt(snapshotLate)} |`,
      '',
      `Budget: ≤ 1 s end to end → ${Math.max(...endToEnd) <= 1000 ? 'met' : 'NOT MET'} (worst ${Math.max(...endToEnd).toFixed(0)} ms). ` +
        `The agent stops no thread (it only reads task records); lateness beyond the quiet windows' worst, ${addedStall.toFixed(1)} ms, is CPU the snapshot took on a ${cpus().length}-core machine → ≤ 10 ms ${addedStall <= 10 ? 'met' : 'NOT MET'}.`,
    ].join('\n');
  } finally {
    child.kill('SIGKILL');
  }
}

export async function runTasksSuite(): Promise<void> {
  const abi = abiSection();
  const snapshot = await snapshotSection();
  const body = [measuredOn('npm run bench -- tasks'), '', '### Task ABI', '', abi, '', '### Snapshot of 100,000 tasks', '', snapshot].join('\n');
  writeSection('tasks', body);
  process.stdout.write(`${body}\n`);
}
