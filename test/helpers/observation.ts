// Observations built by hand, for the detectors' unit tests.
import { NO_TASKS, type Observation, SNAPSHOT_SCHEMA, type ThreadInfo } from '../../src/model/snapshot.js';

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
