// A live stream of analysed snapshots of one pid, for the console: polls at
// an interval, refreshes at once when the task query changes, reconnects
// with back-off when the agent goes away and says when the target exited.
import { analyze } from '../analysis/index.js';
import type { Thresholds } from '../analysis/detector.js';
import { LeakscopeError } from '../errors.js';
import type { ReclaimResult } from '../model/agent-facts.js';
import type { Snapshot } from '../model/snapshot.js';
import { type Connection, connect, disconnect, observe, reclaim, type TaskQuery } from './attach.js';
import { hasExited } from './target.js';

export type FeedStatus =
  | { readonly state: 'connected'; readonly via: 'agent' | 'proc' }
  | { readonly state: 'reconnecting'; readonly attempt: number; readonly retryInMs: number; readonly reason: string }
  | { readonly state: 'exited'; readonly detail: string };

export interface FeedListener {
  /** A snapshot taken with `query`. */
  snapshot(snapshot: Snapshot, query: TaskQuery): void;
  status(status: FeedStatus): void;
}

export interface LiveFeedOptions {
  readonly intervalMs: number;
  readonly thresholds: Thresholds;
  readonly query?: TaskQuery;
  /** How to (re)connect; `connect` with the run's defaults unless given. */
  readonly connect?: (pid: number) => Promise<Connection>;
}

/** Waits between reconnect attempts: quick at first, then at most every few seconds. */
export const RECONNECT_BACKOFF_MS: readonly number[] = [250, 500, 1000, 2000, 4000, 5000];

export function backoffFor(attempt: number): number {
  return RECONNECT_BACKOFF_MS[Math.min(attempt, RECONNECT_BACKOFF_MS.length - 1)]!;
}

export class LiveFeed {
  private query: TaskQuery;
  private paused = false;
  private closed = false;
  private wake: (() => void) | null = null;
  private exclusive: Promise<unknown> = Promise.resolve();
  private running: Promise<void> | null = null;

  /** Takes over `connection` (from a first `connect`, so that a bad pid fails before any screen is drawn). */
  constructor(
    readonly pid: number,
    private connection: Connection | null,
    private readonly options: LiveFeedOptions,
  ) {
    this.query = options.query ?? {};
  }

  start(listener: FeedListener): void {
    if (this.running) throw new LeakscopeError('internal: the feed runs already');
    if (this.connection) listener.status({ state: 'connected', via: this.connection.kind });
    this.running = this.loop(listener);
  }

  /** Asks for another page or order of tasks: refreshes now. */
  setQuery(query: TaskQuery): void {
    this.query = query;
    this.wakeUp();
  }

  /** Paused: no periodic refresh (a query change still fetches). */
  setPaused(paused: boolean): void {
    this.paused = paused;
    if (!paused) this.wakeUp();
  }

  /** Takes a snapshot now (after a reclaim, say). */
  refresh(): void {
    this.wakeUp();
  }

  async reclaim(): Promise<ReclaimResult> {
    const connection = this.connection;
    if (!connection) throw new LeakscopeError(`not connected to pid ${this.pid} right now; try again when the console says connected`);
    return this.serially(() => reclaim(connection));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakeUp();
    await this.running;
    if (this.connection) disconnect(this.connection);
    this.connection = null;
  }

  private async loop(listener: FeedListener): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      const started = Date.now();
      if (!this.connection) {
        try {
          this.connection = await (this.options.connect ?? connect)(this.pid);
          attempt = 0;
          if (this.closed) break;
          listener.status({ state: 'connected', via: this.connection.kind });
        } catch (error) {
          if (await this.reportExit(listener)) return;
          const retryInMs = backoffFor(attempt++);
          listener.status({ state: 'reconnecting', attempt, retryInMs, reason: (error as Error).message });
          await this.pause(retryInMs, true);
          continue;
        }
      }
      const connection = this.connection;
      const query = this.query;
      try {
        const observation = await this.serially(() => observe(connection, query));
        if (this.closed) break;
        listener.snapshot(analyze(observation, this.options.thresholds), query);
      } catch (error) {
        disconnect(connection);
        this.connection = null;
        if (this.closed) break;
        if (await this.reportExit(listener)) return;
        // Alive, but the agent went away (it exec'd, or restarted): reconnect.
        const retryInMs = backoffFor(attempt++);
        listener.status({ state: 'reconnecting', attempt, retryInMs, reason: (error as Error).message });
        await this.pause(retryInMs, true);
        continue;
      }
      // A query change during the request fetches again at once.
      if (query !== this.query) continue;
      await this.pause(Math.max(0, started + this.options.intervalMs - Date.now()), false);
    }
  }

  private async reportExit(listener: FeedListener): Promise<boolean> {
    if (!(await hasExited(this.pid))) return false;
    listener.status({ state: 'exited', detail: `pid ${this.pid} exited` });
    return true;
  }

  /** Sleeps `ms`, or until woken; while paused (and not reconnecting) until woken only. */
  private pause(ms: number, reconnecting: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = this.paused && !reconnecting ? undefined : setTimeout(done, ms);
      this.wake = done;
    });
  }

  private wakeUp(): void {
    this.wake?.();
  }

  /** One request at a time on the connection: the protocol has no pipelining. */
  private serially<T>(work: () => Promise<T>): Promise<T> {
    const next = this.exclusive.then(work, work);
    this.exclusive = next.catch(() => undefined);
    return next;
  }
}
