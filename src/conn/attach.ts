// Reaching a pid: through its agent's socket when it has one, otherwise the
// /proc view. Owns the decisions about stale sockets.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import { LeakscopeError } from '../errors.js';
import { type AgentFacts, observationFromFacts, type ReclaimResult } from '../model/agent-facts.js';
import type { Observation } from '../model/snapshot.js';
import { jsStacks, nativeStacks } from '../model/stacks.js';
import { AgentClient, type HelloResult, type RequestParams } from './agent-client.js';
import { readCgroupMemory } from './cgroup.js';
import { AGENT_NOT_LOADED, allocatorFromMaps, procObservation, readProcessMemory } from './proc-view.js';
import { InjectRefused, injectNativeAgent } from './native-inject.js';
import { injectNodeBridge, isNodeProcess, waitForInspectorClosed } from './node-inject.js';
import { Symbolizer } from './symbolize.js';
import { identifyTarget, isAlive, processStartedAt, readProcFile, socketDirectory, targetSocketPaths, whileAlive } from './target.js';

export type Connection =
  | { readonly kind: 'agent'; readonly client: AgentClient; readonly hello: HelloResult }
  | { readonly kind: 'proc'; readonly pid: number; readonly reason: string };

export interface ConnectOptions {
  readonly timeoutMs?: number;
  /** A process without the agent gets it: a Node one through its inspector, a native one through ptrace (default true). */
  readonly inject?: boolean;
  /** For an injected agent: how long it records after the last client leaves. */
  readonly lingerMs?: number;
}

async function removeStaleSocket(path: string): Promise<string> {
  try {
    await fs.unlink(path);
    return `stale agent socket ${path} removed`;
  } catch {
    return `stale agent socket ${path}`;
  }
}

async function firstExisting(paths: readonly string[]): Promise<string | null> {
  for (const path of paths) {
    try {
      await fs.lstat(path);
      return path;
    } catch {
      // not there: the next
    }
  }
  return null;
}

/**
 * Removes the sockets of agents whose processes are gone from the socket
 * directories this CLI looks in (a Node target killed by SIGTERM cannot
 * remove its own). Only sockets, only those whose pid no longer exists, and
 * only where we may.
 */
export async function sweepDeadSockets(directories: readonly string[]): Promise<number> {
  let removed = 0;
  for (const directory of directories)
    for (const name of await fs.readdir(directory).catch(() => [] as string[])) {
      const m = /^(\d+)\.sock$/.exec(name);
      if (!m || isAlive(Number(m[1]))) continue;
      const path = `${directory}/${name}`;
      const stat = await fs.lstat(path).catch(() => null);
      // The pid in the name is the agent's own: one in another pid namespace may be alive under
      // another number here. Only a socket nobody listens on any more is removed.
      if (stat?.isSocket() && (await nobodyListens(path)) && (await fs.unlink(path).then(() => true, () => false))) removed++;
    }
  return removed;
}

function nobodyListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection(path);
    const done = (refused: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(refused);
    };
    const timer = setTimeout(() => done(false), 500);
    socket.once('connect', () => done(false));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED'));
  });
}

let attachDefaults: Pick<ConnectOptions, 'inject' | 'lingerMs'> = {};

/** The CLI's --linger and --no-inject, for every connect of this run. */
export function setAttachDefaults(defaults: Pick<ConnectOptions, 'inject' | 'lingerMs'>): void {
  attachDefaults = defaults;
}

export async function connect(pid: number, given: ConnectOptions = {}): Promise<Connection> {
  const options = { ...attachDefaults, ...given };
  const target = await identifyTarget(pid);
  const paths = targetSocketPaths(target);
  await sweepDeadSockets([...new Set(paths.map((p) => p.slice(0, p.lastIndexOf('/'))))]);
  const path = (await firstExisting(paths)) ?? paths[0]!;
  const withoutAgent = async (reason: string): Promise<Connection> => {
    if (options.inject === false) return { kind: 'proc', pid, reason };
    if (!(await isNodeProcess(pid))) {
      try {
        await injectNativeAgent(pid, {
          lingerMs: options.lingerMs,
          // The agent listens where this CLI looks (LEAKSCOPE_SOCKET_DIR), as the target names it.
          socketDir: process.env.LEAKSCOPE_SOCKET_DIR ? socketDirectory(target.uid) : undefined,
        });
      } catch (error) {
        if (error instanceof InjectRefused) return { kind: 'proc', pid, reason: `${AGENT_NOT_LOADED}: ${error.message}` };
        throw error;
      }
      return connect(pid, { ...options, inject: false });
    }
    const doing = 'loading its agent through the Node inspector';
    const injected = await whileAlive(pid, doing, injectNodeBridge(pid, { lingerMs: options.lingerMs, timeoutMs: options.timeoutMs }));
    const connection = await whileAlive(pid, doing, connect(pid, { ...options, inject: false }));
    if (!injected.inspectorWasOpen) {
      try {
        await whileAlive(pid, doing, waitForInspectorClosed(pid, injected.inspectorPort, options.timeoutMs ?? 10_000));
      } catch (error) {
        disconnect(connection);
        throw error;
      }
    }
    return connection;
  };
  let client: AgentClient;
  try {
    client = await AgentClient.connect(path, pid, options.timeoutMs);
  } catch (error) {
    if (error instanceof LeakscopeError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return withoutAgent('no agent socket');
    if (code === 'ECONNREFUSED') {
      if (!isAlive(pid)) throw new LeakscopeError(`no process with pid ${pid} (it exited; ${await removeStaleSocket(path)})`);
      // Alive but nobody listens: the process exec'd, or forked from one
      // with an agent. The file is a leftover either way.
      return withoutAgent(await removeStaleSocket(path));
    }
    if (code === 'EACCES' || code === 'EPERM')
      throw new LeakscopeError(`permission denied on ${path}: run leakscope as uid ${target.uid} or as root`);
    throw new LeakscopeError(`cannot reach the agent of pid ${pid} at ${path}: ${(error as Error).message}`);
  }
  try {
    const hello = await client.hello();
    if (hello.pid !== pid && hello.pid !== target.ownPid) throw new LeakscopeError(`the socket for pid ${pid} is served by pid ${hello.pid}; remove ${path}`);
    return { kind: 'agent', client, hello };
  } catch (error) {
    client.close();
    throw error;
  }
}

export function disconnect(connection: Connection): void {
  if (connection.kind === 'agent') connection.client.close();
}

/** Which tasks a snapshot lists (sites are always aggregated over all of them). */
export interface TaskQuery {
  readonly idleThresholdMs?: number;
  readonly offset?: number;
  readonly limit?: number;
  readonly sort?: TaskSort;
  readonly state?: TaskStateFilter;
  readonly filter?: string;
  readonly site?: string;
  /** Allocation stacks to send: this many by live bytes and as many by growth (0: all; default 50). */
  readonly stacks?: number;
}

export const TASK_SORTS = ['idle', 'age', 'polls', 'busy', 'allocated', 'live_bytes', 'id'] as const;
export type TaskSort = (typeof TASK_SORTS)[number];
export const TASK_STATE_FILTERS = ['live', 'all', 'idle', 'running', 'scheduled', 'completed'] as const;
export type TaskStateFilter = (typeof TASK_STATE_FILTERS)[number];

export function taskQueryParams(query: TaskQuery): RequestParams {
  const params: Record<string, string | number> = {};
  if (query.idleThresholdMs !== undefined) params.idle_threshold_ms = Math.round(query.idleThresholdMs);
  if (query.offset !== undefined) params.tasks_offset = query.offset;
  if (query.limit !== undefined) params.tasks_limit = query.limit;
  if (query.sort !== undefined) params.tasks_sort = query.sort;
  if (query.state !== undefined) params.tasks_state = query.state;
  if (query.filter) params.tasks_filter = query.filter;
  if (query.site) params.tasks_site = query.site;
  params.stacks_limit = query.stacks ?? 50;
  return params;
}

export async function observe(connection: Connection, query: TaskQuery = {}): Promise<Observation> {
  const pid = connection.kind === 'proc' ? connection.pid : connection.client.pid;
  const [observation, startedAt] = await Promise.all([
    connection.kind === 'proc'
      ? procObservation(connection.pid, connection.reason)
      : connection.client.request<AgentFacts>('snapshot', taskQueryParams(query)).then(withHeapStacks),
    processStartedAt(pid),
  ]);
  // Measured right after the agent answered: what the findings' amounts are
  // bounded by. Neither read may cost the snapshot the agent already gave:
  // without them the amounts fall back to RSS, the allocator stays unnamed.
  const [memory, cgroup, allocator] = await Promise.all([
    readProcessMemory(pid).catch(() => null),
    readCgroupMemory(pid).catch(() => null),
    allocatorNamed(pid, observation.allocator).catch(() => observation.allocator),
  ]);
  // A process in its own pid namespace knows itself by another pid: the
  // snapshot names it by the one it was asked for.
  const ownPid = observation.pid !== pid ? observation.pid : null;
  return {
    ...observation,
    pid,
    agent: ownPid === null ? observation.agent : { ...observation.agent, notes: [...observation.agent.notes, `pid ${pid} is pid ${ownPid} in its own pid namespace`] },
    allocator,
    process: { ...observation.process, started_at: startedAt, ...(memory ? { memory } : {}), cgroup },
  };
}

/** The observation, with the agent's allocation stacks named (the CLI symbolizes; the agent sends addresses). */
async function withHeapStacks(facts: AgentFacts): Promise<Observation> {
  const observation = observationFromFacts(facts);
  // A Node process: where its JavaScript heap was allocated.
  const js = facts.node?.bridge?.heap_profile;
  if (js) return { ...observation, heap: jsStacks(js, facts.now_ms) };
  const raw = facts.stacks;
  if (!raw || raw.unwinder === 'off') return observation;
  const addresses = raw.entries.flatMap((e) => e.frames);
  const named = await symbolizer.symbolize(facts.pid, raw.modules, addresses).catch(() => ({ frames: new Map(), modules: [], notes: ['the stacks could not be symbolized'] }));
  const heap = nativeStacks(raw, named.frames, named.modules, named.notes, facts.sample_interval_bytes, facts.now_ms);
  const siteOf = new Map(heap.stacks.map((x) => [x.id, x.site]));
  const sites = observation.tasks.sites.map((s) => (s.stacks ? { ...s, stacks: s.stacks.map((x) => ({ ...x, site: siteOf.get(x.id) ?? null })) } : s));
  return { ...observation, heap, tasks: { ...observation.tasks, sites } };
}

/** One per CLI process: names are cached by build id across snapshots. */
const symbolizer = new Symbolizer();

/** An allocator the agent could not name (a Node process attached late) is named from the libraries the process maps. */
async function allocatorNamed(pid: number, allocator: Observation['allocator']): Promise<Observation['allocator']> {
  if (allocator.name !== 'unknown') return allocator;
  const name = allocatorFromMaps(await readProcFile(pid, 'maps'));
  return name === 'unknown' ? allocator : { ...allocator, name };
}

export async function reclaim(connection: Connection): Promise<ReclaimResult> {
  if (connection.kind === 'proc')
    throw new LeakscopeError(
      connection.reason.startsWith(AGENT_NOT_LOADED)
        ? `pid ${connection.pid} has no leakscope agent (${connection.reason}); reclaim runs inside the process`
        : `pid ${connection.pid} has no leakscope agent (${connection.reason}); reclaim runs inside the process: let leakscope load its agent (without --no-inject), or start the program with 'leakscope run'`,
    );
  return connection.client.request<ReclaimResult>('reclaim');
}

/** Connects, runs `work`, and always disconnects. */
export async function withConnection<T>(pid: number, work: (c: Connection) => Promise<T>, options?: ConnectOptions): Promise<T> {
  const connection = await connect(pid, options);
  try {
    return await work(connection);
  } finally {
    disconnect(connection);
  }
}
