// leakscope run: start a program with the agent preloaded.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, promises as fs, openSync, readSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { socketPath } from '../../conn/target.js';
import { LeakscopeError } from '../../errors.js';
import { agentLibraryPath, allocatorLibraryPath, isNodeExecutable, nodeAgentFile, type CountMode, type PreloadAllocator } from '../../paths.js';

export interface RunOptions {
  readonly allocator: PreloadAllocator;
  /** sampled (the default): counts estimated from the samples; exact: every allocation and free counted, at more cost. */
  readonly counts?: CountMode;
  readonly sampleInterval?: string;
  /** Keep the agent through exec (children too); undefined: when the command is a script. */
  readonly followExec?: boolean;
  readonly quiet: boolean;
}

export function parseAllocator(text: string): PreloadAllocator {
  if (text === 'glibc' || text === 'jemalloc' || text === 'mimalloc') return text;
  throw new LeakscopeError(`unknown allocator '${text}' (expected glibc, jemalloc or mimalloc)`);
}

export function parseCountMode(text: string): CountMode {
  if (text === 'exact' || text === 'sampled') return text;
  throw new LeakscopeError(`--counts takes 'exact' or 'sampled', not '${text}'`);
}

export function parseSampleInterval(text: string): string {
  if (text === 'exact' || /^\d+$/.test(text)) return text;
  throw new LeakscopeError(`--sample-interval takes a number of bytes or 'exact', not '${text}'`);
}

/**
 * The environment the program starts with: our agent first, so that the
 * allocator after it is what it forwards to; for node, the bridge too.
 */
export function runEnvironment(options: RunOptions, base: NodeJS.ProcessEnv = process.env, command: readonly string[] = []): NodeJS.ProcessEnv {
  const preload = [agentLibraryPath(options.counts), allocatorLibraryPath(options.allocator), base.LD_PRELOAD].filter((p): p is string => !!p);
  const env: NodeJS.ProcessEnv = { ...base, LD_PRELOAD: preload.join(':') };
  if (command[0] && isNodeExecutable(command[0]))
    env.NODE_OPTIONS = [base.NODE_OPTIONS, `--require ${nodeAgentFile('preload.cjs')}`].filter(Boolean).join(' ');
  if (options.sampleInterval !== undefined) env.LEAKSCOPE_SAMPLE_INTERVAL = options.sampleInterval;
  if (options.followExec) env.LEAKSCOPE_FOLLOW_CHILDREN = '1';
  return env;
}

const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** The file a command names, as exec would find it through PATH; null when there is none. */
export function resolveCommand(file: string, path = process.env.PATH ?? ''): string | null {
  if (file.includes('/')) return existsSync(file) ? file : null;
  for (const dir of path.split(delimiter)) if (dir && existsSync(join(dir, file))) return join(dir, file);
  return null;
}

/** A script (#!): a wrapper that usually execs the real program (pyenv and rbenv shims, launchers). */
export function isScript(path: string | null): boolean {
  if (path === null) return false;
  try {
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(2);
      return readSync(fd, head, 0, 2, 0) === 2 && head.toString('latin1') === '#!';
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

export function runCommand(command: readonly string[], options: RunOptions): Promise<number> {
  const [file, ...args] = command;
  if (!file) throw new LeakscopeError("nothing to run: give a command after '--', e.g. leakscope run -- ./server");
  const resolved = resolveCommand(file);
  const script = isScript(resolved);
  const followExec = options.followExec ?? script;
  if (script && options.followExec === undefined && !options.quiet)
    process.stderr.write(`leakscope: ${file} is a script; the agent follows it through exec, into the programs it runs (--no-follow-exec: not)\n`);
  const env = runEnvironment({ ...options, followExec }, process.env, command);
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'inherit', env });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
    child.once('spawn', () => {
      if (options.quiet || !child.pid) return;
      process.stderr.write(`leakscope: agent loaded into pid ${child.pid}; inspect it with 'leakscope snapshot ${child.pid}'\n`);
      void watchStart(child.pid, file, resolved, followExec);
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new LeakscopeError(
          error.code === 'ENOENT' ? `command not found: ${file}` : error.code === 'EACCES' ? `permission denied: ${file}` : `cannot start ${file}: ${error.message}`,
          127,
        ),
      );
    });
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED_SIGNALS) process.off(s, forward);
      resolve(code ?? 128 + (signal ? signalNumber(signal) : 0));
    });
  });
}

/** How long `run` watches a new process for an exec that leaves the agent behind, or an agent that never answers. */
export const WATCH_START_MS = 5000;

/**
 * After "agent loaded": what became of it in the first seconds. A program
 * that exec'd another one without the agent (a wrapper; `--follow-exec`
 * keeps it) is said at once, and so is an agent that never listened.
 */
async function watchStart(pid: number, file: string, resolved: string | null, followExec: boolean): Promise<void> {
  const socket = socketPath(pid, process.getuid?.() ?? 0);
  const deadline = Date.now() + WATCH_START_MS;
  let unmapped = 0;
  while (Date.now() < deadline) {
    const exe = await fs.readlink(`/proc/${pid}/exe`).catch(() => null);
    if (exe === null) return; // it exited: its exit status says the rest
    const mapped = /libleakscope/.test(await fs.readFile(`/proc/${pid}/maps`, 'utf8').catch(() => ''));
    // Twice in a row, 50 ms apart: not a read made while the loader was still mapping it.
    unmapped = mapped ? 0 : unmapped + 1;
    if (unmapped >= 2) {
      const same = resolved !== null && (await fs.realpath(resolved).catch(() => resolved)) === exe;
      process.stderr.write(
        same
          ? `leakscope: the agent is not in pid ${pid} (${exe}): the loader did not load it (a statically linked or setuid program?); 'leakscope snapshot ${pid}' can still attach by pid\n`
          : `leakscope: pid ${pid} exec'd ${exe} and left the agent behind (${file} is a wrapper that runs another program); ` +
              `run it again with --follow-exec, or give leakscope run the real program\n`,
      );
      return;
    }
    if (mapped && existsSync(socket) && followExec) return; // it follows any exec from here
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!existsSync(socket)) process.stderr.write(`leakscope: pid ${pid} has no agent listening after ${WATCH_START_MS / 1000} s; 'leakscope snapshot ${pid}' says why\n`);
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15 };
  return numbers[signal] ?? 0;
}
