// leakscope run: start a program with the agent preloaded.
import { spawn } from 'node:child_process';
import { LeakscopeError } from '../../errors.js';
import { agentLibraryPath, allocatorLibraryPath, isNodeExecutable, nodeAgentFile, type CountMode, type PreloadAllocator } from '../../paths.js';

export interface RunOptions {
  readonly allocator: PreloadAllocator;
  /** sampled (the default): counts estimated from the samples; exact: every allocation and free counted, at more cost. */
  readonly counts?: CountMode;
  readonly sampleInterval?: string;
  readonly followExec: boolean;
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

export function runCommand(command: readonly string[], options: RunOptions): Promise<number> {
  const [file, ...args] = command;
  if (!file) throw new LeakscopeError("nothing to run: give a command after '--', e.g. leakscope run -- ./server");
  const env = runEnvironment(options, process.env, command);
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'inherit', env });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
    child.once('spawn', () => {
      if (!options.quiet) process.stderr.write(`leakscope: agent loaded into pid ${child.pid}; inspect it with 'leakscope snapshot ${child.pid}'\n`);
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

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15 };
  return numbers[signal] ?? 0;
}
