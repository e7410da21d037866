// Runs a scenario as a user would meet it: start the program (under
// `leakscope run`, or bare when it carries its agent or is a Node process
// attached by pid), give it its load, take `leakscope snapshot --json` at
// 60 s and at 75 s, and grade the 75 s one against the program's own truth.
// A healthy program must also have no WARN or ERROR finding at 60 s.
import { type ChildProcess, spawn } from 'node:child_process';
import { get, Agent } from 'node:http';
import { createInterface } from 'node:readline';
import type { Cause, Snapshot } from '../../src/model/snapshot.js';
import { CLI, runCli, safeKill } from '../helpers/process.js';
import type { Amount, Scenario, Truth } from './catalogue.js';

export const GRADE_AT_MS = 75_000;
export const EARLY_LOOK_MS = 60_000;

export interface Grade {
  readonly scenario: Scenario;
  readonly truth: { readonly cause: Cause; readonly finding: string | null };
  readonly verdict: Snapshot['verdict'] | null;
  /** WARN and ERROR findings at 60 s and at 75 s. */
  readonly early: readonly string[];
  readonly late: readonly string[];
  readonly amount: Amount | null;
  readonly right: boolean;
  /** What was wrong, in words; empty when right. */
  readonly wrong: readonly string[];
  readonly error?: string;
}

/** Attaching by pid goes through one inspector port: one at a time. */
let attachQueue: Promise<unknown> = Promise.resolve();

async function snapshot(pid: number): Promise<Snapshot> {
  const result = await runCli(['snapshot', String(pid), '--json']);
  if (result.code !== 0) throw new Error(`leakscope snapshot ${pid}: ${result.stderr.trim()}`);
  return JSON.parse(result.stdout) as Snapshot;
}

function launch(scenario: Scenario): { child: ChildProcess; ready: Promise<Truth> } {
  const { argv, allocator } = scenario.launch;
  const [file, args] = allocator
    ? [process.execPath, [CLI, 'run', '-q', '--allocator', allocator, '--', ...argv]]
    : [argv[0] as string, argv.slice(1)];
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += String(chunk)));
  const ready = new Promise<Truth>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${scenario.id} printed no truth in 30 s; stderr: ${stderr}`)), 30_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{"ready":true')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line) as Truth);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${scenario.id} exited (${code}) before it was ready; stderr: ${stderr.trim()}`));
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${scenario.id} could not start: ${error.message}`));
    });
  });
  return { child, ready };
}

/** `perSecond` GETs a second on kept-alive connections until `stop` is set. */
function drive(port: number, path: string, perSecond: number, stop: { done: boolean }): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const one = () =>
    new Promise<void>((resolve) => {
      const request = get({ host: '127.0.0.1', port, path, agent }, (response) => {
        response.resume();
        response.on('end', resolve);
        response.on('error', () => resolve());
      });
      request.on('error', () => resolve());
    });
  return (async () => {
    while (!stop.done) {
      await Promise.all(Array.from({ length: Math.max(1, perSecond / 10) }, one));
      await new Promise((r) => setTimeout(r, 100));
    }
    agent.destroy();
  })();
}

const loud = (s: Snapshot) => s.findings.filter((f) => f.severity !== 'info').map((f) => `${f.severity.toUpperCase()} ${f.id}`);

export async function runScenario(scenario: Scenario): Promise<Grade> {
  const started = Date.now();
  const { child, ready } = launch(scenario);
  let pid = 0;
  const stop = { done: false };
  try {
    const truth = await ready;
    pid = truth.pid;
    const cause = (truth.cause as Cause | undefined) ?? scenario.cause;
    const finding = (truth.finding as string | undefined) ?? scenario.finding ?? null;
    if (!cause) throw new Error(`${scenario.id}: no truth of what it is`);
    if (scenario.launch.attachAtStart) {
      const attached = attachQueue.then(() => snapshot(pid));
      attachQueue = attached.catch(() => undefined);
      await attached;
    }
    const load = scenario.load && truth.port ? drive(truth.port, scenario.load.path, scenario.load.perSecond, stop) : Promise.resolve();
    const at = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, started + ms - Date.now())));
    await at(EARLY_LOOK_MS);
    const early = await snapshot(pid);
    await at(GRADE_AT_MS);
    const late = await snapshot(pid);
    stop.done = true;
    await load;
    return grade(scenario, { cause, finding }, truth, early, late);
  } catch (error) {
    stop.done = true;
    const cause = scenario.cause ?? 'unknown';
    return {
      scenario,
      truth: { cause, finding: scenario.finding ?? null },
      verdict: null,
      early: [],
      late: [],
      amount: null,
      right: false,
      wrong: ['could not be run'],
      error: (error as Error).message,
    };
  } finally {
    if (pid) safeKill(pid, 'SIGKILL');
    child.kill('SIGKILL');
  }
}

export function grade(scenario: Scenario, truth: Grade['truth'], printed: Truth, early: Snapshot, late: Snapshot): Grade {
  const wrong: string[] = [];
  const verdict = late.verdict;
  if (verdict.cause !== truth.cause) wrong.push(`verdict ${verdict.cause}, truth ${truth.cause}`);
  if (truth.finding && !late.findings.some((f) => f.id === truth.finding)) wrong.push(`no ${truth.finding} finding`);
  if (truth.finding && verdict.cause === truth.cause && !verdict.because.includes(truth.finding))
    wrong.push(`the verdict rests on ${verdict.because.join(', ') || 'nothing'}, not ${truth.finding}`);
  const earlyLoud = loud(early);
  const lateLoud = loud(late);
  if (truth.cause === 'steady' && (earlyLoud.length > 0 || lateLoud.length > 0))
    wrong.push(`a healthy program got ${[...new Set([...earlyLoud, ...lateLoud])].join(', ')}`);
  const amount = scenario.amount?.(printed, late) ?? null;
  if (amount) {
    if (amount.measured === null) wrong.push(`no amount for ${amount.what}`);
    else if (Math.abs(amount.measured - amount.expected) > amount.tolerance * amount.expected)
      wrong.push(`${amount.what}: ${amount.measured} against ${Math.round(amount.expected)} (±${Math.round(amount.tolerance * 100)}%)`);
  }
  return { scenario, truth, verdict, early: earlyLoud, late: lateLoud, amount, right: wrong.length === 0, wrong };
}

/** Runs scenarios `parallel` at a time, in order; calls `done` as each ends. */
export async function runAll(scenarios: readonly Scenario[], parallel: number, done: (g: Grade) => void = () => {}): Promise<Grade[]> {
  const grades: Grade[] = new Array(scenarios.length);
  let next = 0;
  const worker = async () => {
    while (next < scenarios.length) {
      const i = next++;
      const g = await runScenario(scenarios[i] as Scenario);
      grades[i] = g;
      done(g);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return grades;
}
