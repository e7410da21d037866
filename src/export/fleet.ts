// The processes `leakscope export` watches: one agent client each, kept by a
// LiveFeed (which reconnects and notices an exit), and with --all found anew
// from the agents' socket directories as processes come and go. Runs on the
// exporter's event loop; what a collection reads is each target's latest
// analysed snapshot.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { basename } from 'node:path';
import type { Thresholds } from '../analysis/detector.js';
import { connect } from '../conn/attach.js';
import { type FeedListener, LiveFeed } from '../conn/live-feed.js';
import { hasExited, isAlive, processStartedAt, socketDirectory } from '../conn/target.js';
import type { Snapshot } from '../model/snapshot.js';
import type { Attributes } from './metrics.js';

/** Why a target is not answering, in a word a metric can carry (bounded). */
export type TargetProblem = 'busy' | 'permission' | 'unreachable';

export interface TargetState {
  readonly pid: number;
  /** service.name, service.instance.id, host.name, process.pid. */
  readonly identity: Attributes;
  /** The latest snapshot while the agent answers; null before the first and while it does not. */
  readonly snapshot: Snapshot | null;
  readonly problem: TargetProblem | null;
  /** Times it stopped answering, by why. */
  readonly failures: ReadonlyMap<TargetProblem, number>;
  /** When the process started, for the start time of its counters. */
  readonly startedAt: Date;
}

export interface FleetOptions {
  readonly pids: readonly number[];
  /** Every process with an agent socket in the socket directories, found again at every interval. */
  readonly all: boolean;
  readonly intervalMs: number;
  readonly thresholds: Thresholds;
  readonly serviceName?: string;
  /** One line for a person (stderr): a target came, went or stopped answering. */
  readonly log: (line: string) => void;
}

export function classifyProblem(message: string): TargetProblem {
  if (/^busy: |another leakscope client/.test(message)) return 'busy';
  if (/permission denied/.test(message)) return 'permission';
  return 'unreachable';
}

/** A stable id for one run of one process on this host: the same across exporter restarts, new when the pid is reused. */
export function instanceId(host: string, pid: number, startedAt: string): string {
  const hex = createHash('sha1').update(`${host}\0${pid}\0${startedAt}`).digest('hex');
  // Laid out as a name-based UUID (RFC 9562 version 5), as semconv suggests for service.instance.id.
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

class Target implements TargetState {
  snapshot: Snapshot | null = null;
  problem: TargetProblem | null = null;
  readonly failures = new Map<TargetProblem, number>();
  identity: Attributes;
  cancelStart: () => void = () => undefined;

  constructor(
    readonly pid: number,
    readonly feed: LiveFeed,
    readonly startedAt: Date,
    private readonly serviceName: string | undefined,
  ) {
    this.identity = this.identify('');
  }

  identify(command: string): Attributes {
    const host = hostname();
    return {
      'service.name': this.serviceName ?? (serviceNameOf(command) || `pid-${this.pid}`),
      'service.instance.id': instanceId(host, this.pid, this.startedAt.toISOString()),
      'host.name': host,
      'process.pid': this.pid,
    };
  }
}

const INTERPRETERS = /^(node|nodejs|python[\d.]*|ruby|perl|bun|deno)$/;

/** A service's name from its command: the program's, or for an interpreter the script's ("node dist/server.js" is "server"). */
export function serviceNameOf(command: string): string {
  const [program = '', ...args] = command.split(' ').filter(Boolean);
  const name = basename(program);
  if (!INTERPRETERS.test(name)) return name;
  const script = args.find((arg) => !arg.startsWith('-'));
  return script ? basename(script).replace(/\.(m|c)?[jt]s$|\.py$|\.rb$|\.pl$/, '') : name;
}

export class Fleet {
  private readonly targets = new Map<number, Target>();
  private readonly gone = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly options: FleetOptions) {}

  /** Starts watching the pids given and, with --all, the socket directories. */
  async start(): Promise<void> {
    // Spread over the interval, so that many targets are not all asked at once.
    const spread = this.options.intervalMs / Math.max(1, this.options.pids.length);
    for (const [i, pid] of this.options.pids.entries()) await this.add(pid, true, i * spread);
    if (this.options.all) {
      await this.discover();
      this.timer = setInterval(() => void this.discover(), this.options.intervalMs);
    }
  }

  states(): readonly TargetState[] {
    return [...this.targets.values()];
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.targets.values()].map((t) => (t.cancelStart(), t.feed.close())));
    this.targets.clear();
  }

  private async add(pid: number, given: boolean, delayMs: number): Promise<void> {
    if (this.targets.has(pid) || this.closed) return;
    const started = await processStart(pid);
    if (started === null) {
      if (given) this.options.log(`pid ${pid}: no such process; watching the others`);
      this.gone.add(pid);
      return;
    }
    // Found by its socket: it has an agent, and none is loaded into a process that has not.
    const feed = new LiveFeed(pid, null, {
      intervalMs: this.options.intervalMs,
      thresholds: this.options.thresholds,
      query: { limit: 0, idleThresholdMs: this.options.thresholds.idleMs },
      connect: given ? undefined : (p: number) => connect(p, { inject: false }),
    });
    const target = new Target(pid, feed, started, this.options.serviceName);
    this.targets.set(pid, target);
    const listener: FeedListener = {
      snapshot: (snapshot) => {
        if (!given && snapshot.agent.mode === 'proc') {
          // Its socket was a leftover: the process has no agent to watch.
          this.options.log(`pid ${pid}: no agent answers at its socket; not watched`);
          this.drop(target);
          return;
        }
        if (target.problem) this.options.log(`pid ${pid}: answering again`);
        target.problem = null;
        target.snapshot = snapshot;
        target.identity = target.identify(snapshot.command);
      },
      status: (status) => {
        if (status.state === 'exited') {
          this.options.log(`pid ${pid}: exited; ${this.targets.size - 1} left`);
          this.drop(target);
        } else if (status.state === 'reconnecting') {
          const problem = classifyProblem(status.reason);
          if (target.problem !== problem) this.options.log(`pid ${pid}: not answering (${status.reason.replace(`pid ${pid}: `, '')}); retrying`);
          if (target.problem === null) target.failures.set(problem, (target.failures.get(problem) ?? 0) + 1);
          target.problem = problem;
          target.snapshot = null;
        }
      },
    };
    const begin = setTimeout(() => this.targets.get(pid) === target && feed.start(listener), delayMs);
    target.cancelStart = () => clearTimeout(begin);
    this.options.log(`pid ${pid}: watching`);
  }

  private drop(target: Target): void {
    target.cancelStart();
    this.targets.delete(target.pid);
    this.gone.add(target.pid);
    void target.feed.close();
  }

  /** Runs on a timer: processes whose agent socket appeared since, and forgets pids that were reused. */
  private async discover(): Promise<void> {
    for (const pid of await agentPids()) {
      if (!isAlive(pid)) continue; // a socket left by a process killed outright; the next connect sweeps it
      if (this.gone.has(pid)) {
        if (await hasExited(pid)) continue;
        this.gone.delete(pid); // a new process with an old pid
      }
      await this.add(pid, false, Math.random() * this.options.intervalMs);
    }
  }
}

async function processStart(pid: number): Promise<Date | null> {
  const at = await processStartedAt(pid);
  return at === null ? null : new Date(at);
}

/** The pids with an agent socket where this user can see one: the socket directories of every uid (root) or our own. */
export async function agentPids(env: NodeJS.ProcessEnv = process.env): Promise<number[]> {
  const uid = process.getuid?.() ?? -1;
  const directories = new Set<string>();
  if (env.LEAKSCOPE_SOCKET_DIR) directories.add(env.LEAKSCOPE_SOCKET_DIR);
  else
    for (const parent of ['/tmp', '/dev/shm']) {
      const names = await fs.readdir(parent).catch(() => [] as string[]);
      for (const name of names) {
        const m = /^leakscope-(\d+)$/.exec(name);
        if (m && (uid === 0 || Number(m[1]) === uid)) directories.add(`${parent}/${name}`);
      }
      if (uid !== 0) directories.add(socketDirectory(uid, env));
    }
  const pids = new Set<number>();
  for (const directory of directories)
    for (const name of await fs.readdir(directory).catch(() => [] as string[])) {
      const m = /^(\d+)\.sock$/.exec(name);
      if (m) pids.add(Number(m[1]));
    }
  return [...pids].sort((a, b) => a - b);
}
