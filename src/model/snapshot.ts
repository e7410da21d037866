// The snapshot contract, `leakscope.snapshot/1` (docs/snapshot.md,
// docs/snapshot.schema.json). Add fields; never rename one.

export const SNAPSHOT_SCHEMA = 'leakscope.snapshot/1';

export type AgentMode = 'preload' | 'crate' | 'inject' | 'node' | 'proc';
/** Where the agent keeps a sampled block's owner (docs/snapshot.md). */
export type SampleStore = 'headers' | 'table';
/** How the agent counts allocations and frees (docs/snapshot.md). */
export type CountMode = 'exact' | 'sampled';
export type AllocatorName = 'glibc' | 'jemalloc' | 'mimalloc' | 'tcmalloc' | 'unknown';
export type Severity = 'info' | 'warn' | 'error';

export interface AgentInfo {
  readonly mode: AgentMode;
  readonly version: string | null;
  /** Mean bytes between ownership samples; 0 = every block (exact mode); null without an agent. */
  readonly sample_bytes: number | null;
  /** Where a sampled block's owner is kept: in a header before the block (LD_PRELOAD over glibc) or in the agent's table; null without an agent or from agents before it was reported. */
  readonly sample_store?: SampleStore | null;
  /** exact: every allocation and free counted; sampled: counts and bytes estimated from the samples (`leakscope run`'s default; `--counts exact` counts every call); null without an agent or from agents before it was reported. */
  readonly counts?: CountMode | null;
  readonly dropped_events: number;
  /** What this snapshot cannot see, in words (e.g. no agent: /proc only). */
  readonly notes: readonly string[];
  /** An agent leakscope loaded into a running native process (mode "inject"): its GOT hooks. */
  readonly hooks?: InjectHooks;
}

/** The malloc hooks of an injected agent (docs/attach.md): in while a client is attached and for `linger_ms` after. */
export interface InjectHooks {
  readonly in: boolean;
  /** Loaded objects with GOT entries rewritten, and the entries. */
  readonly objects: number;
  readonly entries: number;
  readonly linger_ms: number;
  /** The allocator the executable carries itself ("#[global_allocator]" for a Rust one; "malloc", "mi_malloc", "je_malloc", … linked in statically), which no GOT hook sees; null when it calls a shared library's malloc. */
  readonly linked_allocator: string | null;
}

export interface ProcessInfo {
  readonly rss_bytes: number;
  readonly threads: number;
  /** When the process started (ISO 8601); null or absent when unknown (older recordings). */
  readonly started_at?: string | null;
  /** RSS by kind, as the kernel counts it (/proc/<pid>/status), read beside the snapshot; absent in older recordings. */
  readonly memory?: ProcessMemory;
  /** The memory cgroup the process is charged to, read beside the snapshot; null where none accounts memory, absent in older recordings. */
  readonly cgroup?: CgroupMemory | null;
}

/**
 * The memory cgroup of the process (cgroup v2, or v1's memory controller),
 * in the kernel's numbers. The cgroup holds every process in it: its usage
 * is theirs together, page cache included.
 */
export interface CgroupMemory {
  readonly version: 1 | 2;
  /** The cgroup's path in its hierarchy, as /proc/<pid>/cgroup gives it. */
  readonly path: string;
  /** The tightest limit on it or on a cgroup above it (v2 memory.max, v1 memory.limit_in_bytes): past it the OOM killer acts. null: no limit. */
  readonly limit_bytes: number | null;
  /** The cgroup where that limit is set; null when none, or when v1 only reports its value. */
  readonly limit_path: string | null;
  /** v2 memory.high: past it the kernel throttles and reclaims hard. */
  readonly high_bytes: number | null;
  /** memory.current (v2) or memory.usage_in_bytes (v1): page cache included. */
  readonly usage_bytes: number;
  /** Usage less inactive file pages: what reclaim cannot easily take back, and what reaching the limit is judged by (the kubelet's working set). */
  readonly working_set_bytes: number;
  readonly anon_bytes: number;
  readonly file_bytes: number;
  /** Kernel memory charged to the cgroup (v2 "kernel" or its parts, v1 memory.kmem.usage_in_bytes); null when not reported. */
  readonly kernel_bytes: number | null;
  /** Processes the OOM killer has killed in this cgroup (memory.events or memory.oom_control); null when not reported. */
  readonly oom_kills: number | null;
}

/** Resident memory by kind (proc(5): RssAnon, RssFile, RssShmem, VmSwap). Only anonymous memory can be the heap's. */
export interface ProcessMemory {
  readonly anon_bytes: number;
  readonly file_bytes: number;
  readonly shmem_bytes: number;
  readonly swap_bytes: number;
  /** VmSize: the address space mapped, resident or not; absent in older recordings. */
  readonly virtual_bytes?: number;
}

/** One glibc arena or jemalloc arena, in the allocator's own numbers. */
export interface Arena {
  readonly index: number;
  /** Bytes the arena has from the system (glibc: heap size; jemalloc: active + dirty + muzzy pages). */
  readonly mapped_bytes: number;
  /** Bytes in blocks handed out. */
  readonly in_use_bytes: number;
  /** Bytes free inside the arena (glibc: free chunks incl. top; jemalloc: dirty + muzzy pages). */
  readonly free_bytes: number;
  /** jemalloc: dirty pages waiting to be purged. */
  readonly dirty_bytes: number | null;
  /** jemalloc: muzzy pages (purged lazily: MADV_FREE), part of free_bytes; absent in older recordings. */
  readonly muzzy_bytes?: number | null;
  /** jemalloc: free space inside slabs that still hold live blocks (active − allocated): purging cannot return it. */
  readonly fragmented_bytes?: number | null;
  /** Threads bound to the arena (jemalloc). */
  readonly threads: number | null;
  /** Time since the arena last served an allocation or a free (jemalloc). */
  readonly idle_ms: number | null;
}

export interface AllocatorInfo {
  readonly name: AllocatorName;
  readonly version: string | null;
  /** Bytes allocated and not yet freed, from the agent's ledger; null without an agent. */
  readonly live_bytes: number | null;
  /**
   * Present when the ledger began counting late (a Node process attached by
   * pid, hooks put into its GOT): allocations from before are not counted,
   * frees are known only for sampled blocks (freed_bytes, free_count null),
   * and live_bytes is the sampled estimate.
   */
  readonly counted_since?: string;
  readonly allocated_bytes: number | null;
  readonly freed_bytes: number | null;
  readonly alloc_count: number | null;
  readonly free_count: number | null;
  readonly arenas: readonly Arena[];
  /** jemalloc: background purging threads on. */
  readonly background_thread: boolean | null;
  /** What `leakscope reclaim` calls for this allocator. */
  readonly reclaim_action: string | null;
  /** The allocator's own statistics, as it states them. */
  readonly stats: Readonly<Record<string, number | boolean | string>>;
}

export interface ThreadHeap {
  readonly alloc_count: number;
  readonly allocated_bytes: number;
  /** Null when counting began late (`allocator.counted_since`): blocks from before are freed too. */
  readonly free_count: number | null;
  readonly freed_bytes: number | null;
  /** Sampled estimate of this thread's blocks still live. */
  readonly live_bytes: number;
  /** This thread's blocks freed by other threads (sampled estimate). */
  readonly remote_freed_bytes: number;
  /**
   * Remote-freed since this thread last entered the allocator: what waits for
   * it under mimalloc 2.0. Null where the allocator has no such state, or
   * the model does not hold (glibc, jemalloc, mimalloc 2.1 and later: see
   * model/allocators.ts).
   */
  readonly unreclaimed_bytes: number | null;
}

/** Roles of a Node process's threads (src/node-agent/threads.cts finds them). */
export type ThreadRole = 'main' | 'worker' | 'libuv-threadpool' | 'v8-delayed-tasks' | 'v8-platform' | 'inspector-signal';

export interface ThreadInfo {
  readonly tid: number;
  readonly name: string;
  /** Kernel state letter: R running, S sleeping, D disk, T stopped, Z zombie. */
  readonly state: string;
  readonly cpu_ms: number;
  /** No CPU progress and no allocator call for this long; null when unknown (/proc only). */
  readonly idle_ms: number | null;
  readonly start_routine: string | null;
  readonly creator_tid: number | null;
  /** What the thread is for in its runtime, where known (Node names every thread "node"; docs/node.md). */
  readonly role?: ThreadRole;
  readonly agent_thread: boolean;
  /** Null when the thread never entered the allocator under the agent, or without an agent. */
  readonly heap: ThreadHeap | null;
}

/** Tasks spawned at one place (`file:line`) of one kind. */
export interface TaskSite {
  readonly site: string;
  readonly kind: string;
  readonly live: number;
  readonly running: number;
  readonly scheduled: number;
  /** Live tasks neither running nor woken. */
  readonly idle: number;
  /** Of those, idle for at least `tasks.idle_threshold_ms`. */
  readonly idle_over_threshold: number;
  readonly oldest_idle_ms: number;
  /** Idle tasks that no waker can wake any more (kinds in `tasks.wakers_tracked_kinds` only). */
  readonly no_waker: number;
  readonly spawned: number;
  readonly completed: number;
  readonly polls: number;
  readonly busy_ms: number;
  readonly wakes: number;
  /** The longest single poll of any task of this site, the current one included. */
  readonly longest_poll_ms: number;
  /** The longest poll still in progress, 0 when none runs. */
  readonly running_longest_ms: number;
  /** Scheduled tasks (spawned or woken) that have waited to be polled for at least `tasks.idle_threshold_ms`. Absent from older agents. */
  readonly scheduled_over_threshold?: number;
  /** Live tasks never polled since their spawn at least `tasks.idle_threshold_ms` ago, whatever their state. */
  readonly never_polled?: number;
  /** The longest wait of a scheduled task to be polled, now. */
  readonly scheduled_longest_ms?: number;
  /** The longest poll of a second or more that ended in the last minute (of slow polls within a minute of each other); null when none. */
  readonly recent_slow_poll_ms?: number | null;
  /** How long ago the last such poll ended. */
  readonly recent_slow_poll_ms_ago?: number | null;
  /** Bytes allocated while this site's tasks were polled (exact). */
  readonly allocated_bytes: number;
  /** Of those, still live (sampled estimate; exact in exact mode). */
  readonly live_bytes: number;
  /** Poll durations: bucket k counts polls of [2^k, 2^(k+1)) µs; the last bucket is open-ended. */
  readonly poll_histogram: readonly number[];
  /** Live tasks at each `history[]` sample, aligned with it; null when not recorded. */
  readonly live_history: readonly number[] | null;
  /** The site's live bytes by allocation stack (`heap.stacks[].id`), the largest 5; absent without stacks. */
  readonly stacks?: readonly { readonly id: string; readonly site: string | null; readonly live_bytes: number }[];
}

export type TaskState = 'running' | 'scheduled' | 'idle' | 'completed';

export interface TaskItem {
  readonly id: number;
  readonly kind: string;
  readonly name: string;
  readonly site: string;
  readonly parent_id: number;
  readonly state: TaskState;
  /** Wall-clock time of the spawn, ms since the epoch. */
  readonly created_ms: number;
  readonly age_ms: number;
  readonly idle_ms: number;
  readonly running_for_ms: number;
  readonly polls: number;
  readonly busy_ms: number;
  readonly longest_poll_ms: number;
  readonly wakes: number;
  readonly last_wake_ms_ago: number | null;
  /** Live wakers; null when the runtime does not report them. */
  readonly wakers: number | null;
  readonly allocated_bytes: number;
  readonly live_bytes: number;
  readonly completed_ms_ago?: number;
  /** A sampled task (Node promises under load) stands for this many; absent when 1. */
  readonly weight?: number;
}

export interface Tasks {
  /** False when nothing in the process reports tasks to leakscope (no agent, or /proc only). */
  readonly tracked: boolean;
  readonly live: number;
  readonly by_state: Readonly<Record<string, number>>;
  readonly spawned: number;
  readonly completed: number;
  /** Tasks the agent could not record (its table was full). */
  readonly dropped: number;
  readonly idle_threshold_ms: number;
  /** How long ago any task's poll last ended: whether the runtime polls at all. Null when none has; absent from older agents. */
  readonly last_poll_ms_ago?: number | null;
  readonly wakers_tracked_kinds: readonly string[];
  readonly sites_total: number;
  readonly sites: readonly TaskSite[];
  /** Tasks matching the query; `items` is the page from `items_offset`. */
  readonly items_total: number;
  readonly items_offset: number;
  readonly items: readonly TaskItem[];
}

export interface HistorySample {
  readonly t_ms: number;
  readonly rss_bytes: number;
  readonly live_bytes: number | null;
  readonly tasks_live: number;
  readonly threads: number;
}

export type SubjectKind = 'process' | 'thread' | 'arena' | 'site' | 'task';

export interface Subject {
  readonly kind: SubjectKind;
  readonly id: string;
  readonly label: string;
}

export interface Finding {
  readonly id: string;
  readonly severity: Severity;
  readonly summary: string;
  readonly message: string;
  readonly subject: Subject;
  readonly value: number;
  readonly unit: 'bytes' | 'count' | 'bytes_per_s' | 'ms';
  readonly remedy: string;
  /**
   * Retention findings: the measurement their value is (bytes, and what they
   * were measured from), and apart from it what the agent's model attributes
   * (null when it has no model of this). Where the two disagree, the value is
   * the measurement.
   */
  readonly measured?: { readonly bytes: number; readonly source: string };
  readonly modelled_bytes?: number | null;
  /** The allocation stacks (`heap.stacks[].id`) the finding names, most of the growth first. */
  readonly stacks?: readonly string[];
}

/** A detector that could not decide yet (too little history, no agent). */
export interface PendingCheck {
  readonly id: string;
  readonly reason: string;
}

export interface HandleCount {
  readonly total: number;
  readonly active: number;
  /** Active and ref'd: these keep the event loop alive. */
  readonly referenced: number;
}

/** What the bridge inside a Node.js process reports (agent mode "node", or `leakscope run` of node). */
export interface NodeRuntime {
  readonly version: string;
  /** recording; lingering (no client, still recording); dormant (hooks removed until a client connects). */
  readonly state: 'recording' | 'lingering' | 'dormant';
  readonly linger_ms: number;
  /** When recording began (ISO 8601): the attach, the last wake, or the start under `leakscope run`. */
  readonly recording_since: string;
  readonly from_start: boolean;
  /** False when the event loop did not answer in time: the fields below are from `answered_at`. */
  readonly responsive: boolean;
  readonly answered_at: string | null;
  /** How long the snapshot request waited for the event loop. */
  readonly loop_delay_ms: number;
  /** Share of time the loop was busy since the previous snapshot (0–1). */
  readonly loop_utilization: number;
  readonly promises: {
    readonly hooked: boolean;
    /** 1: every promise's site is recorded; n: one in about n, each standing for n. */
    readonly sample_interval: number;
    /** The sparsest sampling since recording began: above 1, live counts include estimates. */
    readonly sparsest_sample_interval?: number;
    /** The init hook is on one window in n of the time (1: always); part of sample_interval. */
    readonly init_hook_interval?: number;
    /** The thread's CPU time the bridge has spent capturing promise sites since it was loaded (its own cost). */
    readonly capture_ms?: number;
    readonly created: number;
    readonly captured: number;
    readonly existed_at_attach: number;
    readonly collected_pending: number;
  };
  readonly timers: { readonly patched: boolean; readonly tracked: number; readonly existed_at_attach: number };
  readonly spans: { readonly api: 'none' | 'no-sdk' | 'hooked'; readonly api_version: string | null; readonly open: number };
  /** leakscope's gauges on the program's OpenTelemetry meter (absent from bridges before they existed). */
  readonly metrics?: {
    /** A meter provider is registered and carries the `leakscope` meter. */
    readonly published: boolean;
    /** `leakscope.tasks.idle` counts tasks idle at least this long (LEAKSCOPE_IDLE_THRESHOLD_MS). */
    readonly idle_threshold_ms: number;
  };
  /** libuv handles of the main loop by type. */
  readonly handles: Readonly<Record<string, HandleCount>>;
  readonly active_resources: Readonly<Record<string, number>>;
  /** Worker threads with a bridge of their own, in the order they joined. */
  readonly workers: readonly NodeWorker[];
  readonly v8_heap: V8Heap;
  /** The main isolate's heap once a second while recording (up to 15 minutes): what v8-heap-growth judges. */
  readonly v8_heap_history?: readonly V8HeapSample[];
  /** The names of `v8_heap_history[].spaces`, in order. */
  readonly v8_heap_spaces?: readonly string[];
}

export interface V8HeapSample {
  readonly t_ms: number;
  readonly used_bytes: number;
  /** Used bytes per heap space, in the order of `v8_heap_spaces`. */
  readonly spaces: readonly number[];
}

export interface V8Heap {
  readonly used_bytes: number;
  readonly total_bytes: number;
  readonly limit_bytes: number;
  readonly external_bytes: number;
  readonly malloced_bytes: number;
  readonly native_contexts: number;
  readonly detached_contexts: number;
}

/** A worker thread's own isolate and loop, as its bridge reports them; its tasks are in `tasks` with the rest. */
export interface NodeWorker
  extends Pick<
    NodeRuntime,
    'state' | 'responsive' | 'answered_at' | 'loop_delay_ms' | 'loop_utilization' | 'promises' | 'timers' | 'spans' | 'handles' | 'active_resources' | 'v8_heap'
  > {
  /** worker_threads.threadId. */
  readonly thread_id: number;
  /** The kernel thread: `threads[]` has it with role "worker". */
  readonly tid: number;
  /** The worker's script (`[worker eval]` for code given as a string); null before its bootstrap finished. */
  readonly script: string | null;
}

/** One frame of an allocation stack. */
export interface StackFrame {
  /** The return address the agent saw (hex); for JavaScript, empty. */
  readonly address: string;
  /** Demangled function name; null when the object has no symbol for it. */
  readonly function: string | null;
  readonly file: string | null;
  readonly line: number | null;
  /** JavaScript: the column, 1-based. */
  readonly column?: number;
  /** The object (executable or shared library) or script it is in. */
  readonly module: string | null;
  /** Inlined into the frame that follows it (same address). */
  readonly inlined?: boolean;
}

/** Where sampled blocks were allocated: one call stack and what its samples stand for. */
export interface AllocationStack {
  /** Stable within one agent: the stack's id in its table (`n<id>`), or for JavaScript the profile node's (`js<id>`). */
  readonly id: string;
  /** The code that allocated, for a person: "cache_insert (cache.c:88) ← handle_request (server.c:210)". */
  readonly site: string;
  /** Innermost first, without the allocator's own entry frames (malloc, operator new, __rust_alloc, leakscope's hooks). */
  readonly frames: readonly StackFrame[];
  readonly live_bytes: number;
  readonly live_blocks: number;
  /** Since the agent started (null for JavaScript: V8's sampling profile keeps live objects only). */
  readonly allocated_bytes: number | null;
  readonly allocated_blocks: number | null;
  /** Live bytes at the agent's checkpoints (every 30 s, up to 16 minutes), oldest first, then now. */
  readonly live_history: readonly { readonly t_ms: number; readonly live_bytes: number }[];
}

/** The object files the stacks' frames are in, and what names each could give. */
export interface HeapModule {
  readonly path: string;
  readonly build_id: string | null;
  readonly symbols: 'debug-info' | 'symbols' | 'exported-symbols' | 'none' | 'unreadable' | 'build-id-mismatch';
  /** Its executable segment in the process: where it was loaded (hex) and from which file offset. */
  readonly start?: string;
  readonly end?: string;
  readonly file_offset?: number;
}

/** Allocation stacks (`heap.stacks`): native from the agent's samples, JavaScript from V8's sampling heap profiler. */
export interface HeapStacks {
  readonly source: 'native' | 'v8-sampling';
  /** How native stacks were walked (dwarf | fp), or "v8" for JavaScript; "off" when none are taken. */
  readonly unwinder: string;
  /** Mean bytes between samples. */
  readonly sample_bytes: number;
  /** Distinct stacks the agent holds; `stacks` has the largest and the fastest-growing of them. */
  readonly stacks_total: number;
  /** Samples whose stack found no room in the agent's table (counted under no stack). */
  readonly dropped: number;
  readonly stacks: readonly AllocationStack[];
  readonly modules: readonly HeapModule[];
  readonly notes: readonly string[];
}

export interface Snapshot {
  readonly schema: typeof SNAPSHOT_SCHEMA;
  readonly pid: number;
  readonly command: string;
  readonly taken_at: string;
  readonly agent: AgentInfo;
  readonly process: ProcessInfo;
  readonly allocator: AllocatorInfo;
  readonly threads: readonly ThreadInfo[];
  readonly tasks: Tasks;
  readonly history: readonly HistorySample[];
  /** Where the heap was allocated: present when the agent sampled stacks. */
  readonly heap?: HeapStacks;
  /** Present for Node.js targets. */
  readonly node?: NodeRuntime;
  readonly findings: readonly Finding[];
  readonly pending_checks: readonly PendingCheck[];
  readonly verdict: Verdict;
}

/** What the findings add up to (src/analysis/verdict.ts). */
export type Cause = 'tasks-leaking' | 'live-data-growing' | 'threads-leaking' | 'allocator-retention' | 'steady' | 'unknown';

export interface Verdict {
  readonly cause: Cause;
  readonly confidence: 'high' | 'medium' | 'low';
  /** The ids of the findings the cause rests on, most severe first. */
  readonly because: readonly string[];
  /** Checks not decided yet that could still change the cause to a graver one. */
  readonly undecided: readonly string[];
  /** One line for a person; the report's, the console's and `check`'s. */
  readonly summary: string;
}

/** A snapshot before the detectors ran. */
export type Observation = Omit<Snapshot, 'findings' | 'pending_checks' | 'verdict'>;

export const NO_TASKS: Tasks = {
  tracked: false,
  live: 0,
  by_state: {},
  spawned: 0,
  completed: 0,
  dropped: 0,
  idle_threshold_ms: 0,
  wakers_tracked_kinds: [],
  sites_total: 0,
  sites: [],
  items_total: 0,
  items_offset: 0,
  items: [],
};
