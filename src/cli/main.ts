// The CLI entry: parses arguments and wires commands; every failure ends as
// one line on stderr and a non-zero exit.
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_IDLE_THRESHOLD_MS, type Thresholds } from '../analysis/detector.js';
import { LeakscopeError } from '../errors.js';
import { parseDuration } from '../format.js';
import { DEFAULT_COUNT_MODE } from '../paths.js';
import { setAttachDefaults } from '../conn/attach.js';
import { TASK_SORTS, TASK_STATE_FILTERS, type TaskQuery, type TaskSort, type TaskStateFilter } from '../conn/attach.js';
import { attachCommand } from './commands/attach.js';
import { checkCommand, EXIT_UNCHECKED, parseFailOn } from './commands/check.js';
import { demoCommand } from './commands/demo.js';
import { diffCommand } from './commands/diff.js';
import { exportCommand } from './commands/export.js';
import { profileCommand } from './commands/profile.js';
import { reclaimCommand } from './commands/reclaim.js';
import { parseAllocator, parseCountMode, parseSampleInterval, runCommand } from './commands/run.js';
import { snapshotCommand } from './commands/snapshot.js';
import { viewCommand } from './commands/view.js';
import { watchCommand } from './commands/watch.js';

const VERSION = '0.1.0';

// A reader that stops early (`leakscope snapshot PID --json | head`) closes
// the pipe: that ends the output, not the command with a stack trace.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });

function durationOption(text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new InvalidArgumentError(`expected a duration like 30s, 2m or 500ms`);
  return ms;
}

function wholeNumber(max: number): (text: string) => number {
  return (text) => {
    if (!/^\d+$/.test(text) || Number(text) > max) throw new InvalidArgumentError(`expected a whole number from 0 to ${max}`);
    return Number(text);
  };
}

function oneOf<T extends string>(allowed: readonly T[]): (text: string) => T {
  return (text) => {
    if (!(allowed as readonly string[]).includes(text)) throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}`);
    return text as T;
  };
}

const IDLE_THRESHOLD_HELP = 'how long a thread, arena or task must be idle to count as asleep (default 30s)';

/** The options that choose which tasks a snapshot lists. */
function withTaskOptions(command: Command): Command {
  return command
    .option('--tasks <n>', 'list up to n tasks (the sites always cover all of them)', wholeNumber(100_000))
    .option('--tasks-offset <n>', 'skip the first n tasks of the list', wholeNumber(2 ** 32))
    .option('--tasks-sort <key>', `order of the list: ${TASK_SORTS.join(', ')}`, oneOf(TASK_SORTS))
    .option('--tasks-state <state>', `which tasks to list: ${TASK_STATE_FILTERS.join(', ')}`, oneOf(TASK_STATE_FILTERS))
    .option('--tasks-filter <text>', 'list tasks whose kind, name or site contains text')
    .option('--tasks-site <site>', 'list tasks spawned at this file:line');
}

/** How a process without the agent gets it (attach, snapshot, watch, check, reclaim): Node through its inspector, native through ptrace. */
function withInjectOptions(command: Command): Command {
  return command
    .option('--linger <duration>', 'an agent leakscope loaded into a running process records this long after the last client leaves (default 5m)', durationOption)
    .option('--no-inject', 'never load the agent into a running process (Node or native); without one, read /proc only');
}

interface TaskOptionValues {
  tasks?: number;
  tasksOffset?: number;
  tasksSort?: TaskSort;
  tasksState?: TaskStateFilter;
  tasksFilter?: string;
  tasksSite?: string;
}

function taskQueryFrom(o: TaskOptionValues): TaskQuery {
  return { limit: o.tasks, offset: o.tasksOffset, sort: o.tasksSort, state: o.tasksState, filter: o.tasksFilter, site: o.tasksSite };
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
    })
    .hook('preAction', (_program, action) => {
      const o = action.opts<{ linger?: number; inject?: boolean }>();
      setAttachDefaults({ lingerMs: o.linger, inject: o.inject });
    });

  withInjectOptions(program
    .command('attach'))
    .description('the interactive console on a running process: findings, tasks, threads, heap')
    .argument('<pid>', 'process id')
    .option('--interval <duration>', 'time between refreshes', durationOption, 1000)
    .option('--idle-threshold <duration>', IDLE_THRESHOLD_HELP, durationOption)
    .option('--save-dir <dir>', "where 's' saves snapshots", '.')
    .action((pid: string, options) =>
      exitWith(() =>
        attachCommand(pid, { intervalMs: Math.max(100, options.interval as number), thresholds: thresholdsFrom(options), saveDir: options.saveDir }),
      ),
    );

  program
    .command('view')
    .description('replay a watch recording (or a snapshot file) in the console; ←/→ step through time')
    .argument('<file>', 'a recording from leakscope watch --out, or a snapshot from snapshot --out')
    .option('--save-dir <dir>', "where 's' saves snapshots", '.')
    .action((file: string, options) => exitWith(() => viewCommand(file, { saveDir: options.saveDir })));

  program
    .command('demo')
    .description('start a small program that leaks tasks, with the agent, and open the console on it')
    .option('--interval <duration>', 'time between refreshes', durationOption, 1000)
    .option('--save-dir <dir>', "where 's' saves snapshots", '.')
    .action((options) => exitWith(() => demoCommand({ intervalMs: Math.max(100, options.interval as number), saveDir: options.saveDir })));

  program
    .command('run')
    .description('start a program with the leakscope agent loaded')
    .option('--allocator <name>', 'glibc, jemalloc or mimalloc (preloaded under the agent)', checked(parseAllocator), 'glibc')
    .option('--counts <mode>', "sampled (per-thread counts estimated from the samples) or exact (every call counted, at more cost)", checked(parseCountMode), DEFAULT_COUNT_MODE)
    .option('--sample-interval <bytes>', "mean bytes between ownership samples, or 'exact'", checked(parseSampleInterval))
    .option('--follow-exec', 'keep the agent through exec, in the program and in every child it execs (the default when the command is a script: a wrapper that execs the real program)')
    .option('--no-follow-exec', 'never keep the agent through exec, even for a script')
    .option('-q, --quiet', 'print nothing of our own', false)
    .argument('<command...>', 'the program and its arguments (after --)')
    .passThroughOptions()
    .action((command: string[], options) => exitWith(() => runCommand(command, options)));

  withTaskOptions(withInjectOptions(
    program
      .command('snapshot')
      .description('one snapshot of a process: findings, tasks, threads, allocator (a Node process gets the agent through its inspector)')
      .argument('<pid>', 'process id')
      .option('--json', 'print the leakscope.snapshot/1 JSON document', false)
      .option('--out <file>', 'write the JSON snapshot to a file')
      .option('--idle-threshold <duration>', IDLE_THRESHOLD_HELP, durationOption),
  )).action((pid: string, options) =>
    exitWith(() => snapshotCommand(pid, { ...options, thresholds: thresholdsFrom(options), tasks: taskQueryFrom(options) })),
  );

  withTaskOptions(withInjectOptions(
    program
      .command('watch')
      .description('record a snapshot every interval as JSON lines, until the count is reached or the target exits')
      .argument('<pid>', 'process id')
      .option('--interval <duration>', 'time between snapshots', durationOption, 1000)
      .option('--count <n>', 'stop after n snapshots', wholeNumber(10_000_000))
      .option('--out <file>', 'write the recording to a file instead of stdout')
      .option('--idle-threshold <duration>', IDLE_THRESHOLD_HELP, durationOption),
  )).action((pid: string, options) =>
    exitWith(() =>
      watchCommand(pid, {
        intervalMs: Math.max(100, options.interval as number),
        count: options.count,
        out: options.out,
        thresholds: thresholdsFrom(options),
        tasks: taskQueryFrom(options),
      }),
    ),
  );

  program
    .command('diff')
    .description('what grew between two snapshot files (or the first and last snapshot of one watch recording)')
    .argument('<files...>', 'A.json B.json, or one recording')
    .option('--json', 'print JSON', false)
    .action((files: string[], options) => exitWith(() => diffCommand(files, options)));

  withInjectOptions(program
    .command('check'))
    .description('exit 0 when clean, 1 with findings at or above --fail-on, 2 when the check could not be made')
    .argument('<target>', 'a process id, or a snapshot file or watch recording')
    .option('--fail-on <severity>', 'warn or error', checked(parseFailOn), 'warn')
    .option('--json', 'print the verdict as JSON', false)
    .option('--idle-threshold <duration>', IDLE_THRESHOLD_HELP, durationOption)
    // A usage error is a check that could not be made, too.
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT_UNCHECKED))
    .action((target: string, options) => exitWith(() => checkCommand(target, { ...options, thresholds: thresholdsFrom(options) })));

  withInjectOptions(program
    .command('profile'))
    .description('write where the live heap was allocated as a pprof heap profile (gzipped profile.proto) for go tool pprof or Pyroscope')
    .argument('<pid>', 'process id')
    .requiredOption('--out <file>', 'the profile to write, e.g. heap.pb.gz')
    .action((pid: string, options) => exitWith(() => profileCommand(pid, { out: options.out as string })));

  withInjectOptions(program
    .command('reclaim'))
    .description("run the allocator's reclaim call in the process and report RSS before and after")
    .argument('<pid>', 'process id')
    .option('--json', 'print JSON', false)
    .action((pid: string, options) => exitWith(() => reclaimCommand(pid, options)));

  withInjectOptions(program
    .command('export'))
    .description('publish the snapshots and findings of processes to Prometheus (/metrics) and OTLP/HTTP until stopped')
    .argument('[pids...]', 'process ids to export (an agent is loaded into those without one, as for snapshot)')
    .option('--all', 'every process with a leakscope agent socket, found again at every interval', false)
    .option('--prometheus <host:port>', 'serve OpenMetrics at http://HOST:PORT/metrics')
    .option('--otlp <url>', 'push OTLP/HTTP metrics to this URL (a base URL gets /v1/metrics)')
    .option('--interval <duration>', 'time between snapshots of each process (and OTLP pushes)', durationOption, 15_000)
    .option('--service-name <name>', "service.name of every exported process (default: each one's command)")
    .option('--idle-threshold <duration>', IDLE_THRESHOLD_HELP, durationOption)
    .action((pids: string[], options) =>
      exitWith(() =>
        exportCommand(pids, {
          all: options.all as boolean,
          prometheus: options.prometheus,
          otlp: options.otlp,
          intervalMs: Math.max(200, options.interval as number),
          serviceName: options.serviceName,
          thresholds: thresholdsFrom(options),
        }),
      ),
    );

  return program;
}

await buildProgram().parseAsync(process.argv);
