// Starting fixtures under the agent and running the CLI, for tests. Every
// process a test starts is killed when the test ends.
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { ExecutionContext } from 'ava';
import { PACKAGE_ROOT } from '../../src/paths.js';
import type { Snapshot } from '../../src/model/snapshot.js';

export const CLI = resolve(PACKAGE_ROOT, 'bin/leakscope.js');
export const FIXTURES = resolve(PACKAGE_ROOT, 'build/fixtures');
export const NODE_FIXTURES = resolve(PACKAGE_ROOT, 'fixtures/node');
/** The Rust fixtures (fixtures/rust), which carry the agent in themselves through leakscope's crate. */
export const RUST_FIXTURES = resolve(PACKAGE_ROOT, 'build/cargo/release');
/** The Tokio services built as one that takes only the runtime hooks: no `layer` feature, so no tracing in Tokio. */
export const RUST_HOOKS_FIXTURES = resolve(PACKAGE_ROOT, 'build/cargo-hooks/release');
/** The sleeping-owner workload on the mimalloc crate's v2 feature (fixtures/rust-mimalloc-v2): a package of its own. */
export const RUST_MIMALLOC_V2_FIXTURES = resolve(PACKAGE_ROOT, 'build/cargo-mimalloc-v2/release');

export interface FixtureOptions {
  readonly allocator?: 'glibc' | 'jemalloc' | 'mimalloc';
  readonly sampleInterval?: string;
  /** leakscope run --counts: sampled (the default) or exact. */
  readonly counts?: 'exact' | 'sampled';
  readonly env?: NodeJS.ProcessEnv;
  /** Start it bare, without leakscope run. */
  readonly withoutAgent?: boolean;
  /** Where NAME is, when not in FIXTURES. */
  readonly dir?: string;
  /** The program that runs NAME (node for a script). */
  readonly interpreter?: string;
  /** A leakscope executable to run it with (an installed package's) instead of this checkout's CLI. */
  readonly cli?: string;
}

export interface Fixture<Truth> {
  readonly pid: number;
  readonly truth: Truth;
  readonly child: ChildProcess;
  alive(): boolean;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts build/fixtures/NAME and resolves with the ground truth it prints. */
export async function startFixture<Truth extends { pid: number }>(
  t: ExecutionContext,
  name: string,
  args: readonly string[] = [],
  options: FixtureOptions = {},
): Promise<Fixture<Truth>> {
  const binary = resolve(options.dir ?? FIXTURES, name);
  const runArgs = ['run', '-q', '--allocator', options.allocator ?? 'glibc'];
  if (options.sampleInterval) runArgs.push('--sample-interval', options.sampleInterval);
  if (options.counts) runArgs.push('--counts', options.counts);
  const program = options.interpreter ? [options.interpreter, binary, ...args] : [binary, ...args];
  const [file, argv] = options.withoutAgent
    ? [program[0]!, program.slice(1)]
    : options.cli
      ? [options.cli, [...runArgs, '--', ...program]]
      : [process.execPath, [CLI, ...runArgs, '--', ...program]];
  const child = spawn(file, argv, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += String(chunk)));
  let pid = 0;
  t.teardown(() => {
    if (pid) safeKill(pid, 'SIGKILL');
    child.kill('SIGKILL');
  });
  const truth = await new Promise<Truth>((resolveTruth, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} printed no ground truth in 30 s; stderr: ${stderr}`)), 30_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (!line.startsWith('{"ready":true')) return;
      clearTimeout(timer);
      resolveTruth(JSON.parse(line) as Truth);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was ready; stderr: ${stderr}`));
    });
  });
  pid = truth.pid;
  return { pid, truth, child, alive: () => isAlive(truth.pid) };
}

export function safeKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(args: readonly string[], options: { env?: NodeJS.ProcessEnv; asUser?: number } = {}): Promise<CliResult> {
  const [file, argv] =
    options.asUser === undefined
      ? [process.execPath, [CLI, ...args]]
      : ['setpriv', [`--reuid=${options.asUser}`, `--regid=${options.asUser}`, '--clear-groups', process.execPath, CLI, ...args]];
  return new Promise((resolveResult) => {
    const child = spawn(file, argv, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += String(chunk)));
    child.stderr.on('data', (chunk) => (stderr += String(chunk)));
    child.once('close', (code) => resolveResult({ code, stdout, stderr }));
  });
}

export async function snapshotOf(pid: number, extra: readonly string[] = []): Promise<Snapshot> {
  const result = await runCli(['snapshot', String(pid), '--json', ...extra]);
  if (result.code !== 0) throw new Error(`snapshot ${pid} failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as Snapshot;
}

/** Takes snapshots until `accept` holds; the last snapshot if it never does. */
export async function snapshotUntil(
  pid: number,
  accept: (s: Snapshot) => boolean,
  options: { extra?: readonly string[]; timeoutMs?: number } = {},
): Promise<Snapshot> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const snapshot = await snapshotOf(pid, options.extra);
    if (accept(snapshot) || Date.now() > deadline) return snapshot;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A failure as a user sees it: a non-zero exit and one line on stderr, no stack trace. */
export function oneLineError(t: ExecutionContext, result: { code: number | null; stdout: string; stderr: string }, pattern: RegExp) {
  t.not(result.code, 0);
  t.is(result.stderr.trimEnd().split('\n').length, 1, `stderr: ${result.stderr}`);
  t.regex(result.stderr, /^leakscope: /);
  t.regex(result.stderr, pattern);
  t.notRegex(result.stderr, /\n\s+at /, 'no stack trace');
}

export const MiB = 1024 * 1024;
