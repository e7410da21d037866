// The CLI entry: parses arguments and wires commands; every failure ends as
// one line on stderr and a non-zero exit.
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_IDLE_THRESHOLD_MS, type Thresholds } from '../analysis/detector.js';
import { LeakscopeError } from '../errors.js';
import { parseDuration } from '../format.js';
import { reclaimCommand } from './commands/reclaim.js';
import { parseAllocator, parseSampleInterval, runCommand } from './commands/run.js';
import { snapshotCommand } from './commands/snapshot.js';

const VERSION = '0.1.0';

function durationOption(text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new InvalidArgumentError(`expected a duration like 30s, 2m or 500ms`);
  return ms;
}

function thresholdsFrom(options: { idleThreshold?: number }): Thresholds {
  return { idleMs: options.idleThreshold ?? DEFAULT_IDLE_THRESHOLD_MS };
}

function checked<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

async function exitWith(work: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await work();
  } catch (error) {
    if (error instanceof LeakscopeError) {
      process.stderr.write(`leakscope: ${error.message}\n`);
      process.exitCode = error.exitCode;
    } else {
      process.stderr.write(`leakscope: internal error: ${(error as Error).message ?? String(error)}\n`);
      if (process.env.LEAKSCOPE_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
      process.exitCode = 70;
    }
  }
}

export function buildProgram(): Command {
  const program = new Command('leakscope')
    .description('Tell a real memory leak from allocator retention in a running process, by pid.')
    .version(VERSION)
    .enablePositionalOptions()
    .configureOutput({
      // Usage errors read like every other error: one line, our prefix.
      outputError: (text, write) => write(`leakscope: ${text.replace(/^error: /, '').replace(/\n+$/, '')}\n`),
    });

  program
    .command('run')
    .description('start a program with the leakscope agent loaded')
    .option('--allocator <name>', 'glibc, jemalloc or mimalloc (preloaded under the agent)', checked(parseAllocator), 'glibc')
    .option('--sample-interval <bytes>', "mean bytes between ownership samples, or 'exact'", checked(parseSampleInterval))
    .option('--follow-exec', 'keep the agent in programs the target execs', false)
    .option('-q, --quiet', 'print nothing of our own', false)
    .argument('<command...>', 'the program and its arguments (after --)')
    .passThroughOptions()
    .action((command: string[], options) => exitWith(() => runCommand(command, options)));

  program
    .command('snapshot')
    .description('one snapshot of a process: findings, threads, allocator')
    .argument('<pid>', 'process id')
    .option('--json', 'print the leakscope.snapshot/1 JSON document', false)
    .option('--out <file>', 'write the JSON snapshot to a file')
    .option('--idle-threshold <duration>', 'how long a thread or arena must be idle to count as asleep (default 30s)', durationOption)
    .action((pid: string, options) => exitWith(() => snapshotCommand(pid, { ...options, thresholds: thresholdsFrom(options) })));

  program
    .command('reclaim')
    .description("run the allocator's reclaim call in the process and report RSS before and after")
    .argument('<pid>', 'process id')
    .option('--json', 'print JSON', false)
    .action((pid: string, options) => exitWith(() => reclaimCommand(pid, options)));

  return program;
}

await buildProgram().parseAsync(process.argv);
