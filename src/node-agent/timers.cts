// Timers and intervals with their creation sites. Node exposes no hook for
// timers short of async_hooks, so leakscope wraps setTimeout / setInterval
// (and the clear calls) on globalThis and in the 'timers' module while it
// records, and puts the originals back when it goes dormant. Code that took
// its own reference to the originals before attach is not seen.
import * as timersModule from 'node:timers';
import { promisify } from 'node:util';
import type { NodeRuntime } from '../model/snapshot.js' with { 'resolution-mode': 'import' };
import type { NativeAgent } from './native.cjs';
import { captureSite, RUNTIME_SITE } from './sites.cjs';

type TimerFn = (callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => NodeJS.Timeout;
type ClearFn = (timer: NodeJS.Timeout | string | number | undefined) => void;

interface Originals {
  readonly setTimeout: TimerFn;
  readonly setInterval: TimerFn;
  readonly clearTimeout: ClearFn;
  readonly clearInterval: ClearFn;
}

const NAMES = ['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval'] as const;

/** The snapshot's `node.timers` (src/model/snapshot.ts is the contract). */
export type TimerFacts = NodeRuntime['timers'];

export const EXISTED_AT_ATTACH_SITE = '(existed at attach)';

/**
 * Node's own housekeeping timers, by their callback's name: not the
 * program's, whatever they wait for (an http.Server checks its connections
 * every 30 s, unref'd, for as long as it listens: lib/_http_server.js).
 */
export const RUNTIME_TIMER_CALLBACKS: ReadonlySet<string> = new Set(['bound checkConnections']);

/** A timer the runtime keeps for itself: by its callback, or created with no frame of the program's on the stack. */
export function runtimeOwn(callback: ((...args: never[]) => unknown) | null | undefined, site: string | null): boolean {
  return RUNTIME_TIMER_CALLBACKS.has(callback?.name ?? '') || site === RUNTIME_SITE;
}

/** The fields of Node's Timeout objects read here (lib/internal/timers.js). */
interface TimeoutInternals {
  _destroyed?: boolean;
  _idleTimeout?: number;
  _repeat?: number | null;
  _onTimeout?: ((...args: unknown[]) => void) | null;
}

export class TimerTracker {
  private originals: Originals | null = null;
  private wrappers: Originals | null = null;
  private readonly ids = new WeakMap<object, number>();
  private readonly open = new Map<number, NodeJS.Timeout>();
  private existedAtAttach = 0;

  /** `own`: leakscope's own timers, never reported. */
  constructor(
    private readonly agent: NativeAgent,
    private readonly own: WeakSet<object>,
  ) {}

  get patched(): boolean {
    return this.originals !== null;
  }

  start(): void {
    if (this.originals) return;
    const originals: Originals = {
      setTimeout: globalThis.setTimeout as unknown as TimerFn,
      setInterval: globalThis.setInterval as unknown as TimerFn,
      clearTimeout: globalThis.clearTimeout as ClearFn,
      clearInterval: globalThis.clearInterval as ClearFn,
    };
    const wrappers = this.makeWrappers(originals);
    this.originals = originals;
    this.wrappers = wrappers;
    this.install(wrappers);
  }

  /** The originals go back (where ours are still in place); open timers end. */
  stop(): void {
    if (!this.originals || !this.wrappers) return;
    const globals = globalThis as unknown as Record<string, unknown>;
    const module = timersModule as unknown as Record<string, unknown>;
    for (const name of NAMES) {
      if (globals[name] === this.wrappers[name]) globals[name] = this.originals[name];
      if (module[name] === this.wrappers[name]) module[name] = this.originals[name];
    }
    for (const id of this.open.keys()) this.agent.complete(id);
    this.open.clear();
    this.originals = null;
    this.wrappers = null;
  }

  /** Timers ended by other means (fired, timer.close(), a cleared numeric id) leave too. */
  facts(): TimerFacts {
    for (const timer of [...this.open.values()]) if ((timer as unknown as TimeoutInternals)._destroyed) this.end(timer);
    return { patched: this.patched, tracked: this.open.size, existed_at_attach: this.existedAtAttach };
  }

  /** Active timers from before attach (the inspector finds them on the heap); their site is unknown. */
  adoptExisting(timers: readonly unknown[]): number {
    let adopted = 0;
    for (const timer of timers) {
      if (typeof timer !== 'object' || timer === null || this.ids.has(timer) || this.own.has(timer)) continue;
      const t = timer as TimeoutInternals;
      if (t._destroyed || typeof t._onTimeout !== 'function' || (t._idleTimeout ?? -1) < 0) continue;
      if (runtimeOwn(t._onTimeout, null)) continue;
      const kind = t._repeat ? 'interval' : 'timer';
      const id = this.agent.spawn(kind, t._onTimeout.name || null, EXISTED_AT_ATTACH_SITE, 0, true, 0);
      if (id === 0) continue;
      this.ids.set(timer, id);
      this.open.set(id, timer as NodeJS.Timeout);
      ++adopted;
    }
    this.existedAtAttach += adopted;
    return adopted;
  }

  /** Whether `timer` is one this tracker follows (leakscope's own are not). */
  owns(timer: object): boolean {
    return this.ids.has(timer);
  }

  private install(functions: Originals): void {
    const globals = globalThis as unknown as Record<string, unknown>;
    const module = timersModule as unknown as Record<string, unknown>;
    for (const name of NAMES) {
      globals[name] = functions[name];
      // ESM namespaces are frozen; the CommonJS exports object behind them is not.
      try {
        module[name] = functions[name];
      } catch {
        /* a frozen namespace: globalThis still has ours */
      }
    }
  }

  private end(timer: unknown): void {
    if (typeof timer !== 'object' || timer === null) return;
    const id = this.ids.get(timer);
    if (id === undefined) return;
    this.ids.delete(timer);
    this.open.delete(id);
    this.agent.complete(id);
  }

  private makeWrappers(originals: Originals): Originals {
    const tracker = this;
    const agent = this.agent;
    const wrap = (original: TimerFn, kind: 'timer' | 'interval'): TimerFn => {
      const wrapper = function (this: unknown, callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) {
        if (typeof callback !== 'function') return original.call(this, callback, ms, ...args);
        let id = 0;
        try {
          const site = captureSite();
          if (!runtimeOwn(callback, site)) id = agent.spawn(kind, callback.name || null, site, 0, true, 0);
        } catch {
          id = 0; // never the program's problem: the timer goes unrecorded
        }
        if (id === 0) return original.call(this, callback, ms, ...args);
        let timer: NodeJS.Timeout;
        const run = function (this: unknown, ...runArgs: unknown[]) {
          agent.pollBegin(id);
          try {
            return callback.apply(this, runArgs);
          } finally {
            agent.pollEnd(id);
            if (kind === 'timer') tracker.end(timer);
          }
        };
        timer = original.call(this, run, ms, ...args);
        tracker.ids.set(timer, id);
        tracker.open.set(id, timer);
        return timer;
      };
      // util.promisify(setTimeout) keeps working through the wrapper.
      const custom = (original as unknown as Record<symbol, unknown>)[promisify.custom];
      if (custom) Object.defineProperty(wrapper, promisify.custom, { value: custom, enumerable: false });
      return wrapper as TimerFn;
    };
    const clear = (original: ClearFn): ClearFn =>
      function (this: unknown, timer) {
        tracker.end(timer);
        return original.call(this, timer);
      };
    return {
      setTimeout: wrap(originals.setTimeout, 'timer'),
      setInterval: wrap(originals.setInterval, 'interval'),
      clearTimeout: clear(originals.clearTimeout),
      clearInterval: clear(originals.clearInterval),
    };
  }
}
