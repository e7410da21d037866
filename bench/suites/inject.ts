// The inject suite: attaching to a running native process (docs/attach.md),
// beside heaptrack -p in the same run.
//   - time from `leakscope snapshot <pid>` to its findings on a process
//     with no agent yet (the injection included), and on one attached before;
//   - how long the one borrowed thread is stopped, and how long the agent
//     takes to start after it (the injector's own report);
//   - the malloc load's time after attach (malloc_bench --wait: the tool
//     attaches, then SIGUSR1 starts the load), bare / injected / under
//     leakscope run / heaptrack -p, interleaved, ratios within a round;
//   - 20 injections into a two-thread malloc/free loop and 20 into a process
//     of 200 threads: crashes, hangs, failures.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { agentLibraryPath, PACKAGE_ROOT } from '../../src/paths.js';
import { measuredOn, median, writeSection } from '../page.js';

const CLI = resolve(PACKAGE_ROOT, 'bin/leakscope.js');
const INJECTOR = resolve(PACKAGE_ROOT, 'build/lib/leakscope-inject');
const LIBRARY = resolve(PACKAGE_ROOT, 'build/lib/libleakscope-inject.so');
const TARGET = resolve(PACKAGE_ROOT, 'build/fixtures/attach_target');
const BENCH = resolve(PACKAGE_ROOT, 'build/bench/malloc_bench');
const OPS_PER_THREAD = Number(process.env.BENCH_OPS ?? 20_000_000);
const REPETITIONS = Number(process.env.BENCH_REPETITIONS ?? 11);
const HEAPTRACK_REPETITIONS = Number(process.env.BENCH_HEAPTRACK_REPETITIONS ?? 3);
const ATTACHES = Number(process.env.BENCH_ATTACHES ?? 15);

interface Running {
  readonly pid: number;
  readonly lines: string[];
  kill(): void;
  alive(): boolean;
}

/** Starts `file` and resolves once it printed a line starting with `ready`. */
function start(file: string, args: readonly string[], ready: string, env: NodeJS.ProcessEnv = process.env): Promise<Running> {
  return new Promise((resolveStart, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'ignore'], env });
    const lines: string[] = [];
    const timer = setTimeout(() => reject(new Error(`${file} did not start`)), 10_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      if (lines.length === 1 && line.startsWith(ready)) {
        clearTimeout(timer);
        const pid = (JSON.parse(line) as { pid?: number; waiting?: number }).pid ?? (JSON.parse(line) as { waiting: number }).waiting;
        resolveStart({
          pid,
          lines,
          kill: () => child.kill('SIGKILL'),
          alive: () => child.exitCode === null && child.signalCode === null,
        });
      }
    });
  });
}

function inject(
  pid: number,
  linger = 'linger_ms=600000',
  env: NodeJS.ProcessEnv = process.env,
): { ok: boolean; pause_us: number; load_ms: number; safe_point: string; message?: string } {
  const out = spawnSync(INJECTOR, [String(pid), '--library', LIBRARY, '--options', linger], { encoding: 'utf8', timeout: 60_000, env });
  if (out.error) return { ok: false, pause_us: 0, load_ms: 0, safe_point: '', message: `hang: ${out.error.message}` };
  return JSON.parse(out.stdout.trim().split('\n').pop() ?? '{}');
}

function timedSnapshot(pid: number): { ms: number; findings: number; mode: string } {
  const started = process.hrtime.bigint();
  const out = execFileSync(process.execPath, [CLI, 'snapshot', String(pid), '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const snapshot = JSON.parse(out) as { findings: unknown[]; agent: { mode: string } };
  return { ms, findings: snapshot.findings.length, mode: snapshot.agent.mode };
}

function processState(pid: number): string {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';
  } catch {
    return 'gone';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function firstFindings() {
  const fresh: number[] = [];
  const attached: number[] = [];
  const pauses: number[] = [];
  const loads: number[] = [];
  const points = new Map<string, number>();
  for (let i = 0; i < ATTACHES; i++) {
    const target = await start(TARGET, ['--loop-threads', '2', '--leak-kib-per-s', '64'], '{"ready"');
    try {
      const first = timedSnapshot(target.pid);
      if (first.mode !== 'inject') throw new Error(`snapshot of a fresh target: mode ${first.mode}`);
      fresh.push(first.ms);
      attached.push(timedSnapshot(target.pid).ms);
    } finally {
      target.kill();
    }
    const other = await start(TARGET, ['--loop-threads', '2'], '{"ready"');
    try {
      const reply = inject(other.pid);
      if (!reply.ok) throw new Error(`injector: ${reply.message}`);
      pauses.push(reply.pause_us / 1000);
      loads.push(reply.load_ms);
      points.set(reply.safe_point, (points.get(reply.safe_point) ?? 0) + 1);
    } finally {
      other.kill();
    }
  }
  let heaptrackAttach: number | null = null;
  if (spawnSync('sh', ['-c', 'command -v heaptrack']).status === 0) {
    const scratch = mkdtempSync(join(tmpdir(), 'leakscope-bench-'));
    const target = await start(TARGET, ['--loop-threads', '2'], '{"ready"');
    const started = Date.now();
    const heaptrack = spawn('heaptrack', ['-p', String(target.pid)], { cwd: scratch, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((done) => {
      const seen = (chunk: Buffer) => /injection finished/.test(String(chunk)) && done();
      heaptrack.stdout.on('data', seen);
      heaptrack.stderr.on('data', seen);
      heaptrack.once('exit', () => done());
    });
    heaptrackAttach = Date.now() - started;
    target.kill();
    heaptrack.kill('SIGKILL');
    rmSync(scratch, { recursive: true, force: true });
  }
  return { fresh, attached, pauses, loads, points, heaptrackAttach };
}

type Mode = 'bare' | 'injected' | 'leakscope run (LD_PRELOAD)' | 'heaptrack -p';

async function loadAfterAttach(mode: Mode, scratch: string): Promise<number> {
  const env = mode === 'leakscope run (LD_PRELOAD)' ? { ...process.env, LD_PRELOAD: agentLibraryPath() } : process.env;
  const bench = await start(BENCH, [String(OPS_PER_THREAD), '--wait'], '{"waiting"', env);
  let heaptrack: ReturnType<typeof spawn> | null = null;
  try {
    if (mode === 'injected') {
      const reply = inject(bench.pid);
      if (!reply.ok) throw new Error(`injector: ${reply.message}`);
    } else if (mode === 'heaptrack -p') {
      heaptrack = spawn('heaptrack', ['-p', String(bench.pid)], { cwd: scratch, stdio: ['ignore', 'pipe', 'pipe'] });
      const child = heaptrack;
      await new Promise<void>((done, fail) => {
        const seen = (chunk: Buffer) => /injection finished/.test(String(chunk)) && done();
        child.stdout!.on('data', seen);
        child.stderr!.on('data', seen);
        child.once('exit', () => fail(new Error('heaptrack -p ended before attaching')));
      });
    }
    process.kill(bench.pid, 'SIGUSR1');
    const deadline = Date.now() + 600_000;
    while (!bench.lines.some((l) => l.startsWith('{"ops"')) && Date.now() < deadline) await sleep(20);
    const line = bench.lines.find((l) => l.startsWith('{"ops"'));
    if (!line) throw new Error(`${mode}: the load did not finish`);
    return (JSON.parse(line) as { seconds: number }).seconds;
  } finally {
    bench.kill();
    if (heaptrack) {
      const child = heaptrack;
      await new Promise((done) => (child.exitCode !== null ? done(null) : child.once('exit', done)));
    }
    for (const f of readdirSync(scratch)) rmSync(join(scratch, f), { force: true });
  }
}

async function stress(args: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  const target = await start(TARGET, args, '{"ready"');
  let failures = 0;
  let hangs = 0;
  const pauses: number[] = [];
  try {
    for (let cycle = 0; cycle < 20; cycle++) {
      const reply = inject(target.pid, 'linger_ms=0', env);
      if (!reply.ok) {
        if (reply.message?.startsWith('hang')) hangs++;
        else failures++;
      } else {
        pauses.push(reply.pause_us / 1000);
      }
      const snapshot = timedSnapshot(target.pid); // hooks in for the client, out after it (linger 0)
      if (snapshot.mode !== 'inject') failures++;
      if (processState(target.pid) === 'T') hangs++;
    }
    const opsBefore = target.lines.length;
    await sleep(600);
    const crashed = !target.alive() || processState(target.pid) === 'gone';
    const stalled = target.lines.length === opsBefore;
    const last = JSON.parse(target.lines[target.lines.length - 1] ?? '{}') as { check_failures?: number };
    return { crashed, hangs: hangs + (stalled ? 1 : 0), failures, pauses, wrongSums: last.check_failures ?? 0 };
  } finally {
    target.kill();
  }
}

export async function runInjectSuite(): Promise<void> {
  const first = await firstFindings();
  const heaptrack = spawnSync('sh', ['-c', 'command -v heaptrack']).status === 0;
  const modes: Mode[] = ['bare', 'injected', 'leakscope run (LD_PRELOAD)', ...(heaptrack ? (['heaptrack -p'] as const) : [])];
  const times = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  const scratch = mkdtempSync(join(tmpdir(), 'leakscope-bench-'));
  for (let round = 0; round < REPETITIONS; round++)
    for (const mode of modes) {
      if (mode === 'heaptrack -p' && round >= HEAPTRACK_REPETITIONS) continue;
      const seconds = await loadAfterAttach(mode, scratch);
      times.get(mode)!.push(seconds);
      process.stderr.write(`round ${round + 1}/${REPETITIONS}  ${mode.padEnd(14)} ${seconds.toFixed(3)} s\n`);
    }
  rmSync(scratch, { recursive: true, force: true });
  const ratio = (mode: Mode) => median(times.get(mode)!.map((s, round) => s / times.get('bare')![round]!));
  const loop = await stress(['--loop-threads', '2']);
  const many = await stress(['--loop-threads', '2', '--idle-threads', '200']);
  const busy = await stress(['--check-threads', '2'], { ...process.env, LEAKSCOPE_INJECT_PREFER: 'busy' });
  const forking = await stress(['--fork-every', '1', '--loop-threads', '1', '--trim-threads', '1']);

  const ms = (v: number) => `${v.toFixed(v < 10 ? 2 : 0)} ms`;
  const injectedRatio = ratio('injected');
  const body = [
    measuredOn('npm run bench -- inject'),
    '',
    `Time from \`leakscope snapshot <pid> --json\` to its findings (the CLI's whole run, Node's start included), on \`attach_target --loop-threads 2\`, ${ATTACHES} fresh processes:`,
    '',
    '| | median | max |',
    '|---|---|---|',
    `| no agent yet: inject, then snapshot | ${ms(median(first.fresh))} | ${ms(Math.max(...first.fresh))} |`,
    `| agent loaded before | ${ms(median(first.attached))} | ${ms(Math.max(...first.attached))} |`,
    `| the borrowed thread stopped (injector's pause) | ${ms(median(first.pauses))} | ${ms(Math.max(...first.pauses))} |`,
    `| the agent's start after it (dlopen, threads, hooks) | ${ms(median(first.loads))} | ${ms(Math.max(...first.loads))} |`,
    ...(first.heaptrackAttach !== null ? [`| heaptrack -p until "injection finished" (gdb stops every thread meanwhile) | ${ms(first.heaptrackAttach)} | |`] : []),
    '',
    `Where the borrowed thread was: ${[...first.points].map(([p, n]) => `${p} ×${n}`).join(', ')}. Goals: first findings under 1 s → ${median(first.fresh) < 1000 ? 'met' : 'NOT MET'}; pause under 50 ms → ${Math.max(...first.pauses) < 50 ? 'met' : 'NOT MET'} (max ${ms(Math.max(...first.pauses))}).`,
    '',
    `The malloc load after attach: \`malloc_bench ${OPS_PER_THREAD} --wait\` (two threads, ${(2 * OPS_PER_THREAD).toLocaleString('en-US')} allocations with cross-thread frees); the tool attaches to the waiting process, then SIGUSR1 starts the load. Interleaved rounds; "vs. bare" is each round's time over bare's in the same round, the median of those.`,
    '',
    '| configuration | median | runs | vs. bare |',
    '|---|---|---|---|',
    ...modes.map((m) => `| ${m} | ${median(times.get(m)!).toFixed(3)} s | ${times.get(m)!.length} | ${ratio(m).toFixed(2)}× |`),
    '',
    `Budget: the injected agent ≤ 1.10× → ${injectedRatio <= 1.1 ? 'met' : 'NOT MET'} (${injectedRatio.toFixed(2)}×), beside \`leakscope run\`'s agent at ${ratio('leakscope run (LD_PRELOAD)').toFixed(2)}× in the same rounds. Both count samples alone; the injected one keeps its samples in the ownership table (a filter lookup on every free), since a block allocated before attach has no header and the C library frees blocks through its own calls, which no GOT hook sees (docs/attach.md).`,
    '',
    'Stress: 20 injections (`leakscope-inject`, linger 0), each followed by a snapshot that puts the hooks in and takes them out as it leaves:',
    '',
    '| target | crashes | hangs | failures | wrong sums | pause median / max |',
    '|---|---|---|---|---|---|',
    `| two threads in a malloc/free loop | ${loop.crashed ? 1 : 0} | ${loop.hangs} | ${loop.failures} | — | ${ms(median(loop.pauses))} / ${ms(Math.max(...loop.pauses))} |`,
    `| 200 idle threads beside the loop | ${many.crashed ? 1 : 0} | ${many.hangs} | ${many.failures} | — | ${ms(median(many.pauses))} / ${ms(Math.max(...many.pauses))} |`,
    `| main forking every millisecond beside a malloc thread and a malloc_trim thread (threads wait on malloc's locks holding others) | ${forking.crashed ? 1 : 0} | ${forking.hangs} | ${forking.failures} | — | ${ms(median(forking.pauses))} / ${ms(Math.max(...forking.pauses))} |`,
    `| two threads computing, each load stopping one in its own code (LEAKSCOPE_INJECT_PREFER=busy) | ${busy.crashed ? 1 : 0} | ${busy.hangs} | ${busy.failures} | ${busy.wrongSums} | ${ms(median(busy.pauses))} / ${ms(Math.max(...busy.pauses))} |`,
    '',
    '"wrong sums": results of the target\'s own register-held computations that came out wrong after a load (attach_target --check-threads: a register the stub did not put back would show here).',
  ].join('\n');
  writeSection('inject', body);
  process.stdout.write(`${body}\n`);
}
