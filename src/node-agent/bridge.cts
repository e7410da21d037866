// The JS half of leakscope's agent in a Node process. `leakscope attach`
// loads it through the inspector (Runtime.evaluate → createRequire), and
// `leakscope run` through --require; either way `attach()` starts the native
// agent (or joins the preloaded one) and the trackers. A worker thread has
// its own isolate and loop, so it gets a bridge of its own (`attachWorker`:
// the preload starts it under run, the main thread's bridge otherwise, see
// workers.cts), which joins the agent the main thread started.
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import * as timers from 'node:timers';
import { isMainThread, threadId } from 'node:worker_threads';
import { loadNativeAgent, type NativeAgent, packageVersion } from './native.cjs';
import { GaugePublisher } from './meter.cjs';
import { SpanTracker } from './otel.cjs';
import { DENSER_WINDOW_MS } from './capture-budget.cjs';
import { JsHeapProfile } from './heap-profile.cjs';
import { PromiseTracker } from './promises.cjs';
import { ThreadRoles } from './threads.cjs';
import { TimerTracker } from './timers.cjs';
import { WorkerFollower } from './workers.cjs';

// Taken before any wrapping: leakscope's own timer is not the program's.
const realSetTimeout = timers.setTimeout;
const realClearTimeout = timers.clearTimeout;
const realSetInterval = timers.setInterval;
const realClearInterval = timers.clearInterval;
/** leakscope's own timers: not the program's, never reported. */
const ownTimers = new WeakSet<object>();

/** leakscope's own timers, for the trackers: unref'd, never reported. */
const ownTimerFunctions = {
  set(callback: () => void, ms: number): NodeJS.Timeout {
    const timer = realSetTimeout(callback, ms);
    timer.unref();
    ownTimers.add(timer);
    return timer;
  },
  clear(timer: NodeJS.Timeout): void {
    realClearTimeout(timer);
  },
};

/** After the last client leaves, recording goes on this long, then the hooks come out. */
export const DEFAULT_LINGER_MS = 5 * 60_000;
/**
 * Loaded into a running process, the bridge waits at least this long for its
 * first client however short the linger: `leakscope attach` is still in the
 * inspector (counting the heap, waiting for workers) and connects after, and
 * the inspector must not be closed under its session.
 */
export const FIRST_CLIENT_GRACE_MS = 15_000;
/** How long the agent's server waits for the event loop before it reports the last answer. */
export const DEFAULT_ANSWER_TIMEOUT_MS = 2000;

export interface AttachOptions {
  readonly lingerMs?: number;
  /** Loaded at start-up (leakscope run) rather than into a running process. */
  readonly fromStart?: boolean;
  readonly answerTimeoutMs?: number;
  /**
   * leakscope opened the inspector to load us: close it when the first
   * client reaches the agent's socket. By then leakscope's inspector session
   * is gone; closing the inspector while a session's socket is closing can
   * crash Node (WsHandler::OnCloseFrameWritten after InspectorIo is gone).
   */
  readonly closeInspector?: boolean;
}

/** A worker's bridge: it reports its own loop's part and follows the main thread's clients. */
interface BridgeRole {
  readonly worker: boolean;
}

export type BridgeState = 'recording' | 'lingering' | 'dormant';

export interface AttachResult {
  readonly pid: number;
  readonly mode: 'node' | 'preload';
  readonly state: BridgeState;
  /** The bridge was there already (a dormant one wakes when a client connects). */
  readonly already: boolean;
  readonly node_version: string;
}

class Bridge {
  private readonly promises: PromiseTracker;
  private readonly timers: TimerTracker;
  private readonly spans: SpanTracker;
  // The main thread's only: gauges and roles are the process's, and workers
  // are followed from there.
  private readonly gauges: GaugePublisher | null;
  private readonly threadRoles: ThreadRoles | null;
  private readonly workers: WorkerFollower | null;
  private state: BridgeState = 'recording';
  private lingerTimer: NodeJS.Timeout | null = null;
  private samplingTimer: NodeJS.Timeout | null = null;
  private readonly heapHistory = new HeapHistory();
  private readonly heapProfile = new JsHeapProfile();
  private recordingSinceMs = Date.now();
  private lastUtilization: EventLoopUtilization | undefined;
  private clients = 0;
  /** The heap hooks' reach (attached late, main thread): objects and GOT entries, or why there are none. */
  private heapHooks: { objects: number; entries: number; error: string | null } | null = null;
  private inspectorToClose = false;
  readonly mode: 'node' | 'preload';

  constructor(
    private readonly agent: NativeAgent,
    private readonly options: Required<AttachOptions>,
    private readonly role: BridgeRole,
  ) {
    this.spans = new SpanTracker(agent);
    this.gauges = role.worker ? null : new GaugePublisher(agent, packageVersion());
    this.threadRoles = role.worker ? null : new ThreadRoles(agent);
    // Under run the preload starts each worker's bridge.
    this.workers =
      role.worker || options.fromStart ? null : new WorkerFollower(__filename, () => this.workerJoinCall(), (callback, ms) => void ownTimerFunctions.set(callback, ms));
    // A program registers its tracer and meter providers after leakscope run loaded us.
    this.promises = new PromiseTracker(agent, ownTimerFunctions, () => this.lookForOtel());
    this.timers = new TimerTracker(agent, ownTimers);
    const collect = (delayMs: number) => this.collect(delayMs);
    const clients = (attached: boolean) => this.clientsChanged(attached);
    const started = role.worker
      ? agent.join(collect, clients, options.answerTimeoutMs, threadId)
      : agent.start(collect, clients, options.answerTimeoutMs);
    this.mode = started.mode;
    this.clients = started.clients;
    if (role.worker && started.dormant && this.clients === 0) {
      this.state = 'dormant'; // as the main thread is: the next client wakes both
      return;
    }
    this.record();
    // Loaded into a running process for a client that may never come.
    if (!options.fromStart && this.clients === 0) this.startLinger(Math.max(options.lingerMs, FIRST_CLIENT_GRACE_MS));
  }

  /** What a worker runs to start its bridge: the same linger and timeout as this one. */
  private workerJoinCall(): string {
    return `attachWorker(${JSON.stringify({ lingerMs: this.options.lingerMs, answerTimeoutMs: this.options.answerTimeoutMs })})`;
  }

  /**
   * Attached late, the native heap is counted from now through GOT hooks;
   * again for objects loaded since the last call. (A preloaded agent hooks
   * everything from the start; a worker shares the main thread's.)
   */
  private hookHeap(): void {
    if (this.role.worker || this.mode !== 'node') return;
    if (process.env.LEAKSCOPE_HEAP_HOOKS === '0') {
      this.heapHooks = { objects: 0, entries: 0, error: 'LEAKSCOPE_HEAP_HOOKS=0 in its environment' };
      return;
    }
    try {
      this.heapHooks = { ...this.agent.heapHooks(true), error: null };
    } catch (error) {
      this.heapHooks = { objects: 0, entries: 0, error: (error as Error).message.replace(/^leakscope: /, '') };
    }
  }

  get currentState(): BridgeState {
    return this.state;
  }

  adoptExisting(promises: readonly unknown[]): number {
    return this.promises.adoptExisting(promises);
  }

  closeInspectorLater(): void {
    this.inspectorToClose = true;
  }

  private closeInspector(): void {
    if (!this.inspectorToClose) return;
    this.inspectorToClose = false;
    setImmediate(() => {
      try {
        (process.getBuiltinModule?.('inspector') ?? require('node:inspector')).close();
      } catch {
        /* closed already */
      }
    });
  }

  adoptTimers(timers: readonly unknown[]): number {
    return this.timers.adoptExisting(timers);
  }

  workersSettled(timeoutMs: number): Promise<void> {
    return this.workers ? this.workers.settled(timeoutMs) : Promise.resolve();
  }

  /** Hooks into OpenTelemetry providers registered since the last look. */
  private lookForOtel(): void {
    this.spans.start();
    this.gauges?.start();
  }

  private record(): void {
    this.promises.start();
    if (!this.samplingTimer) {
      this.samplingTimer = realSetInterval(() => {
        this.promises.tick();
        this.heapProfile.tick();
      }, DENSER_WINDOW_MS);
      this.samplingTimer.unref();
      ownTimers.add(this.samplingTimer);
    }
    this.timers.start();
    this.heapHistory.start();
    if (!this.role.worker) this.heapProfile.start();
    this.lookForOtel();
    this.workers?.start();
    this.hookHeap();
    if (!this.role.worker) this.agent.setDormant(false);
    this.state = 'recording';
    this.recordingSinceMs = Date.now();
  }

  private sleep(): void {
    this.lingerTimer = null;
    this.closeInspector(); // no client ever came: leave the process as found
    this.promises.stop();
    if (this.samplingTimer) realClearInterval(this.samplingTimer);
    this.samplingTimer = null;
    this.timers.stop();
    this.heapHistory.stop();
    this.heapProfile.stop();
    this.spans.stop();
    this.gauges?.stop();
    this.workers?.stop();
    if (this.heapHooks && !this.heapHooks.error) this.agent.heapHooks(false);
    this.heapHooks = null;
    if (!this.role.worker) this.agent.setDormant(true);
    this.state = 'dormant';
  }

  private startLinger(ms: number = this.options.lingerMs): void {
    if (this.lingerTimer) realClearTimeout(this.lingerTimer);
    this.state = 'lingering';
    this.lingerTimer = ownTimerFunctions.set(() => this.sleep(), ms);
  }

  // Runs on the main thread, queued by the agent's server thread.
  private clientsChanged(attached: boolean): void {
    this.clients = Math.max(0, this.clients + (attached ? 1 : -1));
    if (attached) {
      this.closeInspector();
      if (this.lingerTimer) realClearTimeout(this.lingerTimer);
      this.lingerTimer = null;
      if (this.state === 'dormant') this.record();
      else this.state = 'recording';
    } else if (this.clients === 0 && this.state !== 'dormant') {
      this.startLinger();
    }
  }

  // Runs on the main thread when a snapshot asks; the agent's server thread
  // waits for it. `delayMs`: how long the request waited for the loop.
  private collect(delayMs: number): string {
    if (this.state !== 'dormant') {
      this.lookForOtel();
      this.hookHeap(); // objects loaded since (an addon required later)
    }
    const utilization = performance.eventLoopUtilization(this.lastUtilization);
    this.lastUtilization = performance.eventLoopUtilization();
    const heap = getHeapStatistics();
    const resources: Record<string, number> = {};
    for (const type of process.getActiveResourcesInfo()) resources[type] = (resources[type] ?? 0) + 1;
    return JSON.stringify({
      node_version: process.version,
      state: this.state,
      linger_ms: this.options.lingerMs,
      recording_since_ms: this.recordingSinceMs,
      from_start: this.options.fromStart,
      event_loop: { answer_delay_ms: delayMs, utilization: utilization.utilization },
      promises: this.promises.facts(),
      timers: this.timers.facts(),
      spans: this.spans.facts(),
      ...(this.gauges ? { metrics: this.gauges.facts() } : {}),
      ...(this.threadRoles ? { thread_roles: this.threadRoles.roles() } : {}),
      ...(this.workers ? { worker_follower: this.workers.facts() } : {}),
      ...(this.heapHooks ? { heap_hooks: this.heapHooks } : {}),
      ...(this.role.worker ? { thread_id: threadId, script: process.argv[1] ?? null } : {}),
      handles: loadedAgent?.uvHandles() ?? {},
      active_resources: resources,
      v8_heap: {
        used_bytes: heap.used_heap_size,
        total_bytes: heap.total_heap_size,
        limit_bytes: heap.heap_size_limit,
        external_bytes: heap.external_memory,
        malloced_bytes: heap.malloced_memory,
        native_contexts: heap.number_of_native_contexts,
        detached_contexts: heap.number_of_detached_contexts,
      },
      ...this.heapHistory.facts(),
      ...(this.state !== 'dormant' ? { heap_profile: this.heapProfile.facts() } : {}),
    });
  }
}

/**
 * The JavaScript heap once a second for the last 15 minutes, by space, while
 * recording: what v8-heap-growth judges. getHeapSpaceStatistics costs
 * microseconds; the ring holds 900 small arrays.
 */
class HeapHistory {
  private static readonly SECONDS = 900;
  private spaces: string[] = [];
  private readonly samples: { t_ms: number; used_bytes: number; spaces: number[] }[] = [];
  private timer: NodeJS.Timeout | null = null;

  start(): void {
    if (this.timer) return;
    this.samples.length = 0;
    this.spaces = getHeapSpaceStatistics().map((s) => s.space_name);
    this.sample();
    this.timer = realSetInterval(() => this.sample(), 1000);
    this.timer.unref();
    ownTimers.add(this.timer);
  }

  stop(): void {
    if (this.timer) realClearInterval(this.timer);
    this.timer = null;
  }

  facts(): { v8_heap_spaces: string[]; v8_heap_history: { t_ms: number; used_bytes: number; spaces: number[] }[] } | Record<string, never> {
    return this.samples.length ? { v8_heap_spaces: this.spaces, v8_heap_history: this.samples } : {};
  }

  private sample(): void {
    const used = new Map(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size]));
    const spaces = this.spaces.map((name) => used.get(name) ?? 0);
    this.samples.push({ t_ms: Date.now(), used_bytes: spaces.reduce((a, b) => a + b, 0), spaces });
    if (this.samples.length > HeapHistory.SECONDS) this.samples.shift();
  }
}

let loadedAgent: NativeAgent | null = null;
let bridge: Bridge | null = null;

function startBridge(options: AttachOptions, role: BridgeRole): AttachResult {
  const already = bridge !== null;
  if (!bridge) {
    loadedAgent = loadNativeAgent();
    bridge = new Bridge(
      loadedAgent,
      {
        lingerMs: options.lingerMs ?? DEFAULT_LINGER_MS,
        fromStart: options.fromStart ?? false,
        answerTimeoutMs: options.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS,
        closeInspector: false,
      },
      role,
    );
  }
  if (options.closeInspector) bridge.closeInspectorLater();
  return { pid: process.pid, mode: bridge.mode, state: bridge.currentState, already, node_version: process.version };
}

/** Starts the main thread's bridge, and with it the agent. */
export function attach(options: AttachOptions = {}): AttachResult {
  if (!isMainThread) throw new Error('leakscope: attach() is for the main thread; a worker uses attachWorker()');
  return startBridge(options, { worker: false });
}

/** Starts a worker thread's bridge, which joins the agent the main thread's started. */
export function attachWorker(options: Omit<AttachOptions, 'closeInspector'> = {}): AttachResult {
  if (isMainThread) throw new Error('leakscope: attachWorker() is for worker threads; the main thread uses attach()');
  return startBridge(options, { worker: true });
}

/** Called by `leakscope attach` with the promises the inspector found on the heap. */
export function adoptExisting(promises: readonly unknown[]): number {
  return bridge ? bridge.adoptExisting(promises) : 0;
}

/** Called by `leakscope attach` with the Timeout objects the inspector found on the heap. */
export function adoptTimers(timers: readonly unknown[]): number {
  return bridge ? bridge.adoptTimers(timers) : 0;
}

/**
 * Called by `leakscope attach` (awaited through the inspector): resolves once
 * the workers running at attach have their bridges and what their heaps held
 * is counted, so the first snapshot has them; at most `timeoutMs`.
 */
export function workersSettled(timeoutMs: number): Promise<void> {
  return bridge ? bridge.workersSettled(timeoutMs) : Promise.resolve();
}

/** Node's Timeout prototype, for the inspector to find the timers on the heap. */
export function timeoutPrototype(): object {
  // The originals: a probe through the wrappers would be recorded as a timer.
  const probe = realSetTimeout(() => undefined, 0);
  realClearTimeout(probe);
  return Object.getPrototypeOf(probe) as object;
}
