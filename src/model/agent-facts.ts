// What the agent reports (docs/protocol.md), and how it becomes an
// Observation. The agent reports facts in its allocator's own terms; the
// shape users see is decided here.
import type { AgentStackFacts } from './stacks.js';
import { type RemoteFreeReclaim, remoteFreeReclaim } from './allocators.js';
import { parseMallocInfo } from './malloc-info.js';
import { type AgentNodeFacts, nodeFromFacts, nodeNotes, nodeThreadRoles } from './node-facts.js';
import {
  type AgentMode,
  type AllocatorInfo,
  type AllocatorName,
  type Arena,
  NO_TASKS,
  type Observation,
  type ThreadRole,
  type CountMode,
  type SampleStore,
  SNAPSHOT_SCHEMA,
  type TaskItem,
  type Tasks,
  type TaskSite,
  type ThreadInfo,
} from './snapshot.js';

export interface AgentThreadFacts {
  tid: number;
  name: string;
  state: string;
  cpu_ms: number;
  idle_ms: number;
  observed_ms: number;
  agent_thread: boolean;
  start_routine?: string;
  creator_tid?: number;
  created_ms?: number;
  heap?: {
    alloc_count: number;
    allocated_bytes: number;
    free_count: number;
    freed_bytes: number;
    live_bytes: number;
    remote_freed_count: number;
    remote_freed_bytes: number;
    unreclaimed_bytes: number;
  };
}

export interface JemallocArenaFacts {
  index: number;
  threads: number;
  active_bytes: number;
  dirty_bytes: number;
  muzzy_bytes: number;
  allocated_bytes: number;
  tcache_bytes: number;
  operations: number;
  dirty_decay_ms: number;
  last_active_ms?: number;
}

/** The injected agent's own part (native/src/inject/entry.cc). */
export interface AgentInjectFacts {
  hooks_in: boolean;
  objects: number;
  entries: number;
  linger_ms: number;
  hook_error: string | null;
  linked_allocator: string | null;
}

export interface AgentFacts {
  inject?: AgentInjectFacts;
  pid: number;
  command: string;
  mode: AgentMode;
  agent_version: string;
  sample_interval_bytes: number;
  /** Where a sampled block's owner is kept; absent from agents before it was reported. */
  sample_store?: SampleStore;
  /** How calls are counted; absent from agents before it was reported (they counted exactly). */
  counts?: CountMode;
  dropped_events: number;
  sampled_blocks: number;
  started_ms: number;
  now_ms: number;
  process: { rss_bytes: number };
  ledger: {
    /** False when no allocation reaches the ledger (a Node process attached late); absent before it was reported. */
    counting?: boolean;
    /** False when the hooks went in late: only sampled blocks' frees are known (absent: true). */
    frees_counted?: boolean;
    /** When counting began, for hooks that went in late. */
    since_ms?: number;
    /** Live bytes as the ledger knows them (absent from older agents: allocated − freed). */
    live_bytes?: number;
    alloc_count: number;
    allocated_bytes: number;
    free_count: number;
    freed_bytes: number;
    exited_threads: number;
  };
  allocator: { name: string; version: string } & Record<string, unknown>;
  threads: AgentThreadFacts[];
  history: { t_ms: number; rss_bytes: number; live_bytes: number | null; tasks_live: number; threads: number }[];
  /** Absent from agents before the task ABI. */
  tasks?: AgentTaskFacts;
  /** Node targets: the bridge's part. */
  node?: AgentNodeFacts;
  /** Allocation stacks of the samples (absent from agents before them). */
  stacks?: AgentStackFacts;
}

export type AgentTaskSiteFacts = Omit<TaskSite, 'live_history' | 'stacks'> & {
  live_history?: number[];
  /** The agent's stack ids (absent from agents before stacks). */
  stacks?: { stack: number; live_bytes: number }[];
};

export type AgentTaskFacts =
  | { enabled: false }
  | {
      enabled: true;
      capacity: number;
      live: number;
      spawned: number;
      completed: number;
      retained_completed: number;
      retain_ms: number;
      dropped_spawns: number;
      dropped_strings: number;
      idle_threshold_ms: number;
      last_poll_ms_ago?: number | null;
      by_state: Record<string, number>;
      wakers_tracked_kinds: string[];
      sites_total: number;
      sites: AgentTaskSiteFacts[];
      items_total: number;
      items_offset: number;
      items: TaskItem[];
    };

export interface ReclaimResult {
  allocator: string;
  action: string;
  performed: boolean;
  before_rss_bytes: number;
  after_rss_bytes: number;
  duration_ms: number;
}

const ALLOCATORS: readonly AllocatorName[] = ['glibc', 'jemalloc', 'mimalloc', 'tcmalloc', 'unknown'];

export function allocatorName(name: string): AllocatorName {
  return (ALLOCATORS as readonly string[]).includes(name) ? (name as AllocatorName) : 'unknown';
}

function scalarStats(raw: Record<string, unknown>): Record<string, number | boolean | string> {
  const stats: Record<string, number | boolean | string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (['name', 'version', 'reclaim_action', 'arenas', 'malloc_info_xml'].includes(key)) continue;
    if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') stats[key] = value;
    else if (value && typeof value === 'object' && !Array.isArray(value))
      for (const [inner, v] of Object.entries(value as Record<string, unknown>))
        if (typeof v === 'number') stats[`${key}.${inner}`] = v;
  }
  return stats;
}

function glibcArenas(raw: Record<string, unknown>): Arena[] {
  const xml = typeof raw.malloc_info_xml === 'string' ? raw.malloc_info_xml : '';
  const info = parseMallocInfo(xml);
  if (!info) return [];
  return info.arenas.map((a) => {
    const free = a.fast_free_bytes + a.rest_free_bytes;
    return {
      index: a.index,
      mapped_bytes: a.system_bytes,
      in_use_bytes: Math.max(0, a.system_bytes - free),
      free_bytes: free,
      dirty_bytes: null,
      threads: null,
      idle_ms: null,
    };
  });
}

/**
 * The arena jemalloc gave the agent's sampler thread at its first mallctl,
 * when that thread is its only one: nothing of the program's is in it.
 */
function agentOwnArena(raw: Record<string, unknown>): number | null {
  const arenas = Array.isArray(raw.arenas) ? (raw.arenas as JemallocArenaFacts[]) : [];
  const own = typeof raw.agent_arena === 'number' ? arenas.find((a) => a.index === raw.agent_arena) : undefined;
  return own && own.threads <= 1 ? own.index : null;
}

function jemallocArenas(raw: Record<string, unknown>, nowMs: number): Arena[] {
  const own = agentOwnArena(raw);
  const arenas = (Array.isArray(raw.arenas) ? (raw.arenas as JemallocArenaFacts[]) : []).filter((a) => a.index !== own);
  return arenas.map((a) => ({
    index: a.index,
    mapped_bytes: a.active_bytes + a.dirty_bytes + a.muzzy_bytes,
    in_use_bytes: a.allocated_bytes,
    free_bytes: a.dirty_bytes + a.muzzy_bytes,
    dirty_bytes: a.dirty_bytes,
    muzzy_bytes: a.muzzy_bytes,
    fragmented_bytes: Math.max(0, a.active_bytes - a.allocated_bytes),
    threads: a.threads,
    idle_ms: a.last_active_ms === undefined ? null : Math.max(0, nowMs - a.last_active_ms),
  }));
}

function threadFromFacts(
  t: AgentThreadFacts,
  counting: boolean,
  freesCounted: boolean,
  role: ThreadRole | undefined,
  ownerReclaim: RemoteFreeReclaim,
): ThreadInfo {
  return {
    tid: t.tid,
    name: t.name,
    state: t.state,
    cpu_ms: t.cpu_ms,
    idle_ms: t.idle_ms,
    start_routine: t.start_routine ? t.start_routine : null,
    creator_tid: t.creator_tid ? t.creator_tid : null,
    ...(role ? { role } : {}),
    agent_thread: t.agent_thread,
    heap: t.heap && counting
      ? {
          alloc_count: t.heap.alloc_count,
          allocated_bytes: t.heap.allocated_bytes,
          free_count: freesCounted ? t.heap.free_count : null,
          freed_bytes: freesCounted ? t.heap.freed_bytes : null,
          live_bytes: t.heap.live_bytes,
          remote_freed_bytes: t.heap.remote_freed_bytes,
          unreclaimed_bytes: ownerReclaim === 'next-call' ? t.heap.unreclaimed_bytes : null,
        }
      : null,
  };
}

export function tasksFromFacts(facts: AgentTaskFacts | undefined): Tasks {
  if (!facts || !facts.enabled || facts.spawned === 0) return { ...NO_TASKS, idle_threshold_ms: facts?.enabled ? facts.idle_threshold_ms : 0 };
  return {
    tracked: true,
    live: facts.live,
    by_state: { ...facts.by_state },
    spawned: facts.spawned,
    completed: facts.completed,
    dropped: facts.dropped_spawns,
    idle_threshold_ms: facts.idle_threshold_ms,
    ...(facts.last_poll_ms_ago !== undefined ? { last_poll_ms_ago: facts.last_poll_ms_ago } : {}),
    wakers_tracked_kinds: [...facts.wakers_tracked_kinds],
    sites_total: facts.sites_total,
    // A site's stacks are named once the snapshot's stacks are (attach.ts): here, ids alone.
    sites: facts.sites.map(({ stacks, ...s }) => ({
      ...s,
      live_history: s.live_history ?? null,
      ...(stacks ? { stacks: stacks.map((x) => ({ id: `n${x.stack}`, site: null, live_bytes: x.live_bytes })) } : {}),
    })),
    items_total: facts.items_total,
    items_offset: facts.items_offset,
    items: facts.items,
  };
}

export function observationFromFacts(facts: AgentFacts): Observation {
  const name = allocatorName(facts.allocator.name);
  const raw = facts.allocator as Record<string, unknown>;
  const arenas = name === 'glibc' ? glibcArenas(raw) : name === 'jemalloc' ? jemallocArenas(raw, facts.now_ms) : [];
  const ledger = facts.ledger;
  const counting = ledger.counting !== false;
  const freesCounted = ledger.frees_counted !== false;
  const allocator: AllocatorInfo = {
    name,
    version: facts.allocator.version || null,
    live_bytes: counting ? (ledger.live_bytes ?? ledger.allocated_bytes - ledger.freed_bytes) : null,
    allocated_bytes: counting ? ledger.allocated_bytes : null,
    freed_bytes: counting && freesCounted ? ledger.freed_bytes : null,
    alloc_count: counting ? ledger.alloc_count : null,
    free_count: counting && freesCounted ? ledger.free_count : null,
    ...(counting && !freesCounted && ledger.since_ms ? { counted_since: new Date(ledger.since_ms).toISOString() } : {}),
    arenas,
    background_thread: typeof raw.background_thread === 'boolean' ? raw.background_thread : null,
    // The probe's own words; "none" when the allocator has no such call.
    reclaim_action: typeof raw.reclaim_action === 'string' && raw.reclaim_action !== 'none' ? raw.reclaim_action : null,
    stats: scalarStats(raw),
  };
  const notes: string[] = [];
  if (facts.sample_interval_bytes > 0 && counting)
    notes.push(`per-thread live, remote-freed and unreclaimed bytes are estimates from sampling every ~${facts.sample_interval_bytes} bytes`);
  if (facts.counts === 'sampled' && counting)
    notes.push(
      `allocation and free counts and bytes, and so live bytes (totals, per thread and per task), are estimates from the samples${facts.sample_interval_bytes === 0 ? ' (exact here: every block is sampled)' : ''}${facts.mode === 'inject' ? '' : '; leakscope run --counts exact counts every call'}`,
    );
  if (facts.dropped_events > 0) notes.push(`the agent dropped ${facts.dropped_events} events (ownership table full)`);
  const ownArena = name === 'jemalloc' ? agentOwnArena(raw) : null;
  if (ownArena !== null)
    notes.push(
      `jemalloc arena ${ownArena} is the agent's sampler thread's (jemalloc gives a thread an arena at its first call, and reading its statistics is one); it holds nothing of the program's and is not listed`,
    );
  const tasks = tasksFromFacts(facts.tasks);
  if (tasks.dropped > 0) notes.push(`the agent's task table was full: ${tasks.dropped} spawned tasks are not tracked`);
  const node = nodeFromFacts(facts.node);
  notes.push(...nodeNotes(node, facts.node, counting, allocator.counted_since));
  notes.push(...injectNotes(facts.inject, allocator.counted_since));
  const roles = nodeThreadRoles(facts.node);
  return {
    schema: SNAPSHOT_SCHEMA,
    pid: facts.pid,
    command: facts.command,
    taken_at: new Date(facts.now_ms).toISOString(),
    agent: {
      mode: facts.mode,
      version: facts.agent_version,
      sample_bytes: facts.sample_interval_bytes,
      sample_store: facts.sample_store ?? null,
      counts: facts.counts ?? 'exact',
      dropped_events: facts.dropped_events + tasks.dropped,
      notes,
      ...(facts.inject
        ? {
            hooks: {
              in: facts.inject.hooks_in,
              objects: facts.inject.objects,
              entries: facts.inject.entries,
              linger_ms: facts.inject.linger_ms,
              linked_allocator: facts.inject.linked_allocator,
            },
          }
        : {}),
    },
    process: { rss_bytes: facts.process.rss_bytes, threads: facts.threads.length },
    allocator,
    threads: facts.threads.map((t) => threadFromFacts(t, counting, freesCounted, roles[t.tid], remoteFreeReclaim(name, allocator.version))),
    tasks,
    history: facts.history.map((h) => ({ ...h, live_bytes: counting ? h.live_bytes : null })),
    ...(node ? { node } : {}),
  };
}

/** What an agent loaded into a running native process cannot see (docs/attach.md). */
function injectNotes(inject: AgentInjectFacts | undefined, countedSince: string | undefined): string[] {
  if (!inject) return [];
  const notes = [
    `the agent was loaded into the running process${countedSince ? ` at ${countedSince}` : ''}: allocations are counted from then on; memory allocated before is not attributed to threads, and live bytes come from the allocator's own statistics`,
  ];
  if (inject.hook_error) notes.push(`the malloc hooks could not go in (${inject.hook_error}): no heap ledger`);
  if (inject.linked_allocator)
    notes.push(
      inject.linked_allocator === '#[global_allocator]'
        ? "the executable has its own Rust #[global_allocator]: unless it forwards to the C library's malloc, the hooks see only what other libraries allocate; link leakscope's crate (docs/rust.md) to see its heap"
        : `the executable carries its own allocator (${inject.linked_allocator}), which it calls directly, not through a shared library: neither these hooks nor LD_PRELOAD see its allocations, only what other libraries allocate; a Rust service shows its heap through leakscope's crate (docs/rust.md)`,
    );
  return notes;
}
