// Observations built by hand, for the detectors' unit tests.
import { NO_TASKS, type NodeRuntime, type Observation, SNAPSHOT_SCHEMA, type TaskItem, type Tasks, type TaskSite, type ThreadInfo } from '../../src/model/snapshot.js';

export const MiB = 1024 * 1024;

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends object ? Mutable<T[K]> : T[K] };
export type Draft = Mutable<Observation>;

export function observation(edit: (o: Draft) => void = () => {}): Observation {
  const o: Draft = {
    schema: SNAPSHOT_SCHEMA,
    pid: 100,
    command: 'service',
    taken_at: '2026-11-22T00:00:00.000Z',
    agent: { mode: 'preload', version: '0.1.0', sample_bytes: 65536, dropped_events: 0, notes: [] },
    process: { rss_bytes: 200 * MiB, threads: 2 },
    allocator: {
      name: 'glibc',
      version: '2.36',
      live_bytes: 150 * MiB,
      allocated_bytes: 300 * MiB,
      freed_bytes: 150 * MiB,
      alloc_count: 1000,
      free_count: 500,
      arenas: [],
      background_thread: null,
      reclaim_action: 'malloc_trim(0)',
      stats: {},
    },
    threads: [thread({ tid: 100, name: 'service' })] as Draft['threads'],
    tasks: NO_TASKS as Draft['tasks'],
    history: [],
  };
  edit(o);
  return o;
}

export function thread(fields: Partial<ThreadInfo> & { tid: number; name: string }): ThreadInfo {
  return {
    state: 'S',
    cpu_ms: 10,
    idle_ms: 0,
    start_routine: null,
    creator_tid: null,
    agent_thread: false,
    heap: null,
    ...fields,
  };
}

/** A Node bridge's report with `v8Total` bytes of V8 heap on the main isolate. */
export function nodeRuntime(v8Total: number): NodeRuntime {
  const loop = { hooked: true, sample_interval: 1, created: 0, captured: 0, existed_at_attach: 0, collected_pending: 0 };
  return {
    version: 'v20.20.2',
    state: 'recording',
    linger_ms: 300_000,
    recording_since: '2026-11-22T00:00:00.000Z',
    from_start: true,
    responsive: true,
    answered_at: '2026-11-22T00:00:00.000Z',
    loop_delay_ms: 1,
    loop_utilization: 0.1,
    promises: loop,
    timers: { patched: true, tracked: 0, existed_at_attach: 0 },
    spans: { api: 'none', api_version: null, open: 0 },
    handles: {},
    active_resources: {},
    workers: [],
    v8_heap: {
      used_bytes: v8Total / 2,
      total_bytes: v8Total,
      limit_bytes: 4096 * MiB,
      external_bytes: 0,
      malloced_bytes: 0,
      native_contexts: 1,
      detached_contexts: 0,
    },
  };
}

/** One history sample a second, with live bytes and threads from the functions. */
export function history(seconds: number, live: (s: number) => number, threads: (s: number) => number = () => 2) {
  return Array.from({ length: seconds }, (_, s) => ({
    t_ms: 1_000_000 + s * 1000,
    rss_bytes: 200 * MiB,
    live_bytes: live(s),
    tasks_live: 0,
    threads: threads(s),
  }));
}

/** A spawn site with nothing live; fields override. */
export function site(fields: Partial<TaskSite> & { site: string }): TaskSite {
  return {
    kind: 'task',
    live: 0,
    running: 0,
    scheduled: 0,
    idle: 0,
    idle_over_threshold: 0,
    oldest_idle_ms: 0,
    no_waker: 0,
    spawned: 0,
    completed: 0,
    polls: 0,
    busy_ms: 0,
    wakes: 0,
    longest_poll_ms: 0,
    running_longest_ms: 0,
    allocated_bytes: 0,
    live_bytes: 0,
    poll_histogram: [],
    live_history: null,
    ...fields,
  };
}

/** Tasks as an agent with the task ABI reports them, at the default idle threshold. */
export function tasks(sites: readonly TaskSite[], fields: Partial<Tasks> = {}): Draft['tasks'] {
  const live = sites.reduce((n, s) => n + s.live, 0);
  const built: Tasks = {
    ...NO_TASKS,
    tracked: true,
    live,
    spawned: sites.reduce((n, s) => n + s.spawned, 0),
    completed: sites.reduce((n, s) => n + s.completed, 0),
    idle_threshold_ms: 30_000,
    wakers_tracked_kinds: ['task'],
    sites_total: sites.length,
    sites,
    ...fields,
  };
  return built as Draft['tasks'];
}

/** One listed task, idle since its first poll; fields override. */
export function taskItem(fields: Partial<TaskItem> & { id: number; site: string }): TaskItem {
  return {
    kind: 'task',
    name: `task-${fields.id}`,
    parent_id: 0,
    state: 'idle',
    created_ms: 1_700_000_000_000,
    age_ms: 60_000,
    idle_ms: 59_000,
    running_for_ms: 0,
    polls: 1,
    busy_ms: 0,
    longest_poll_ms: 0,
    wakes: 0,
    last_wake_ms_ago: null,
    wakers: 1,
    allocated_bytes: 20_000,
    live_bytes: 20_000,
    ...fields,
  };
}
