// What each of a Node process's threads is for. Node 20 names them all
// "node", so roles are found: the main thread is the process; libuv's
// threadpool answers a probe (work items that note their thread); and the
// threads Node starts before the program's first line come in a fixed order
// (V8's platform: its delayed-task scheduler, then --v8-pool-size workers;
// then the thread that waits for SIGUSR1). Worker threads are named from
// their own bridges (src/model/node-facts.ts); others (the inspector's I/O,
// an addon's) have no role.
import { readdirSync, readFileSync } from 'node:fs';
import type { ThreadRole } from '../model/snapshot.js' with { 'resolution-mode': 'import' };
import type { NativeAgent } from './native.cjs';

/** Threads Node starts at start-up begin within this long of the main thread (clock ticks: 1/100 s). */
const STARTUP_TICKS = 100;
/** How long the threadpool probe may hold the loop and the pool. */
const POOL_PROBE_TIMEOUT_MS = 50;
const DEFAULT_V8_POOL_SIZE = 4;
const DEFAULT_UV_THREADPOOL_SIZE = 4;

/** A Node option's value from the command line or NODE_OPTIONS, e.g. --v8-pool-size=8. */
function nodeOption(name: string): string | undefined {
  const options = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  for (let i = 0; i < options.length; i++) {
    const option = options[i]!;
    if (option.startsWith(`${name}=`)) return option.slice(name.length + 1);
    if (option === name) return options[i + 1];
  }
  return undefined;
}

function sizeOr(text: string | undefined, fallback: number): number {
  const value = Number(text);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

interface TaskStat {
  readonly tid: number;
  readonly name: string;
  readonly startTicks: number;
}

function taskStats(): TaskStat[] {
  const stats: TaskStat[] = [];
  for (const entry of readdirSync('/proc/self/task')) {
    try {
      const text = readFileSync(`/proc/self/task/${entry}/stat`, 'utf8');
      const close = text.lastIndexOf(')');
      const name = text.slice(text.indexOf('(') + 1, close);
      // Fields after the name, from the third (state): starttime is the 22nd.
      const fields = text.slice(close + 2).split(' ');
      stats.push({ tid: Number(entry), name, startTicks: Number(fields[22 - 3]) });
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return stats.sort((a, b) => a.tid - b.tid);
}

export class ThreadRoles {
  private pool: readonly number[] = [];

  constructor(private readonly agent: NativeAgent) {}

  /** Runs on the main thread. tid → role, for the threads whose role is known. */
  roles(): Record<string, ThreadRole> {
    const roles: Record<string, ThreadRole> = {};
    const threads = taskStats();
    const main = threads.find((t) => t.tid === process.pid);
    if (!main) return roles;
    roles[main.tid] = 'main';
    const poolSize = sizeOr(process.env.UV_THREADPOOL_SIZE, DEFAULT_UV_THREADPOOL_SIZE);
    // Until the whole pool has answered once (a busy pool thread may not).
    if (this.pool.length < poolSize) {
      try {
        this.pool = this.agent.threadpoolTids(poolSize, POOL_PROBE_TIMEOUT_MS);
      } catch {
        /* no pool to ask */
      }
    }
    const live = new Set(threads.map((t) => t.tid));
    for (const tid of this.pool) if (live.has(tid)) roles[tid] = 'libuv-threadpool';
    const startup = threads.filter(
      (t) => roles[t.tid] === undefined && !t.name.startsWith('leakscope-') && t.startTicks - main.startTicks <= STARTUP_TICKS,
    );
    const order: ThreadRole[] = ['v8-delayed-tasks'];
    for (let i = 0; i < sizeOr(nodeOption('--v8-pool-size'), DEFAULT_V8_POOL_SIZE); i++) order.push('v8-platform');
    order.push('inspector-signal');
    startup.slice(0, order.length).forEach((t, at) => (roles[t.tid] = order[at]!));
    return roles;
  }
}
