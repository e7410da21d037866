// Pending promises by creation site, through v8.promiseHooks (no
// async_hooks). A hook runs for every promise, so it does almost nothing:
// a countdown picks the promises whose site is captured, as often as the
// capture budget (capture-budget.cts) allows. Each captured promise is one
// task in the agent standing for 2^shift promises; while the budget lets
// every promise be captured, the shift is 0 and the counts are exact. The
// init hook's calls themselves cost the program too much at high promise
// rates: then it is on in windows (init-windows.cts), and a promise seen
// stands for 2^(shift + window log2). The settled hook is always on.
import { promiseHooks } from 'node:v8';
import { inspect } from 'node:util';
import type { NodeRuntime } from '../model/snapshot.js' with { 'resolution-mode': 'import' };
import type { NativeAgent } from './native.cjs';
import { captureSite } from './sites.cjs';
import { CaptureBudget } from './capture-budget.cjs';
import { INIT_WINDOW_MS, InitWindows } from './init-windows.cjs';
import { EXISTED_AT_ATTACH_SITE } from './timers.cjs';

/** The snapshot's `node.promises` (src/model/snapshot.ts is the contract). */
export type PromiseFacts = NodeRuntime['promises'];

/** Timers of leakscope's own (never the program's). */
export interface OwnTimers {
  set(callback: () => void, ms: number): NodeJS.Timeout;
  clear(timer: NodeJS.Timeout): void;
}

export class PromiseTracker {
  private stopSettled: (() => void) | null = null;
  private stopInit: (() => void) | null = null;
  private readonly windows = new InitWindows();
  private windowTimer: NodeJS.Timeout | null = null;
  /** When the init hook went on, and `created` then. */
  private initOnSince = 0;
  private createdAtOn = 0;
  /** The sparsest 2^n a promise stood for since recording began. */
  private sparsestLog2 = 0;
  private readonly ids = new WeakMap<object, number>();
  /** Ids of tasks not yet completed, so that going dormant can end them all. */
  private readonly open = new Set<number>();
  private readonly collected: FinalizationRegistry<number>;
  private readonly budget = new CaptureBudget(performance.now());
  /** The thread's CPU time, or the wall clock where that clock is missing. */
  private readonly cpuMs: () => number;
  private countdown = 1;
  private created = 0;
  private captured = 0;
  private existedAtAttach = 0;
  private collectedPending = 0;

  /** `onCapture` runs at each captured site: a cheap moment to look for things registered since (a tracer provider). */
  constructor(
    private readonly agent: NativeAgent,
    private readonly timers: OwnTimers,
    private readonly onCapture: () => void = () => undefined,
  ) {
    this.cpuMs = agent.threadCpuMs() >= 0 ? () => agent.threadCpuMs() : () => performance.now();
    // A pending promise nobody can reach any more is gone, not leaked.
    this.collected = new FinalizationRegistry((id) => {
      if (this.open.delete(id)) {
        ++this.collectedPending;
        this.agent.complete(id);
      }
    });
  }

  get hooked(): boolean {
    return this.stopSettled !== null;
  }

  start(): void {
    if (this.stopSettled) return;
    this.budget.reset();
    this.windows.reset();
    this.sparsestLog2 = this.budget.shift + this.windows.log2;
    this.stopSettled = promiseHooks.onSettled((promise) => this.settled(promise)) as () => void;
    this.initOn();
    if (this.windows.log2 > 0) this.scheduleWindow(INIT_WINDOW_MS);
  }

  /** Hooks off; every task still open ends, since nothing would end it now. */
  stop(): void {
    if (this.windowTimer) this.timers.clear(this.windowTimer);
    this.windowTimer = null;
    this.initOff();
    this.stopSettled?.();
    this.stopSettled = null;
    for (const id of this.open) this.agent.complete(id);
    this.open.clear();
  }

  private initOn(): void {
    if (this.stopInit) return;
    this.stopInit = promiseHooks.onInit((promise) => this.created_(promise)) as () => void;
    this.initOnSince = performance.now();
    this.createdAtOn = this.created;
  }

  private initOff(): void {
    if (!this.stopInit) return;
    this.stopInit();
    this.stopInit = null;
    this.foldObserved();
  }

  /** What the init hook saw since it went on (or since the last fold). */
  private foldObserved(): void {
    const now = performance.now();
    this.windows.observed(this.created - this.createdAtOn, now - this.initOnSince);
    this.initOnSince = now;
    this.createdAtOn = this.created;
  }

  /** The window timer: the init hook on for INIT_WINDOW_MS, then off for a gap. */
  private scheduleWindow(ms: number): void {
    this.windowTimer = this.timers.set(() => {
      this.windowTimer = null;
      if (!this.stopSettled) return;
      if (this.stopInit) {
        this.initOff();
        this.rejudge();
      } else {
        this.initOn();
      }
      if (this.windows.log2 > 0) this.scheduleWindow(this.stopInit ? INIT_WINDOW_MS : this.windows.offMs());
      else this.initOn();
    }, ms);
  }

  /** The init hook's windows from the rate seen while it was on; the hook on for good when it may be. */
  private rejudge(): void {
    const before = this.windows.log2;
    if (!this.windows.decide()) return;
    this.sparsestLog2 = Math.max(this.sparsestLog2, this.budget.shift + this.windows.log2);
    if (this.windows.log2 === 0) {
      if (this.windowTimer) this.timers.clear(this.windowTimer);
      this.windowTimer = null;
      this.initOn();
    } else if (before === 0 && !this.windowTimer) {
      this.scheduleWindow(INIT_WINDOW_MS);
    }
  }

  /** Promises that were there before the hooks: the pending ones count, site unknown. */
  adoptExisting(promises: readonly unknown[]): number {
    let adopted = 0;
    for (const promise of promises) {
      if (!(promise instanceof Promise) || this.ids.has(promise)) continue;
      if (!/^[^{]*\{ <pending>/.test(inspect(promise, { depth: 0, customInspect: false }))) continue;
      this.track(promise, EXISTED_AT_ATTACH_SITE, 0);
      ++adopted;
    }
    this.existedAtAttach += adopted;
    return adopted;
  }

  facts(): PromiseFacts {
    return {
      hooked: this.hooked,
      sample_interval: 2 ** (this.budget.shift + this.windows.log2),
      sparsest_sample_interval: 2 ** this.sparsestLog2,
      init_hook_interval: 2 ** this.windows.log2,
      capture_ms: Math.round(this.budget.spentMs),
      created: this.created,
      captured: this.captured,
      existed_at_attach: this.existedAtAttach,
      collected_pending: this.collectedPending,
    };
  }

  // The hot path: every promise the program creates.
  private created_(promise: Promise<unknown>): void {
    ++this.created;
    if (--this.countdown > 0) return;
    try {
      this.sampleTaken(promise);
    } catch {
      // Never the program's problem: this promise goes unrecorded.
      this.countdown = 1;
    }
  }

  private settled(promise: Promise<unknown>): void {
    const id = this.ids.get(promise);
    if (id === undefined) return;
    this.ids.delete(promise);
    this.collected.unregister(promise);
    this.open.delete(id);
    this.agent.complete(id);
  }

  private sampleTaken(promise: Promise<unknown>): void {
    // A capture's cost is the thread's CPU time: on a loaded machine a
    // capture preempted midway took milliseconds of wall clock and a few
    // microseconds of the program's time.
    const started = this.cpuMs();
    this.track(promise, captureSite(), this.budget.shift + this.windows.log2);
    if (this.budget.captured(this.cpuMs() - started, performance.now(), this.created))
      this.sparsestLog2 = Math.max(this.sparsestLog2, this.budget.shift + this.windows.log2);
    this.countdown = this.budget.gap();
    this.onCapture();
  }

  /** Every DENSER_WINDOW_MS (capture-budget.cts), from a timer of leakscope's own. */
  tick(): void {
    // A new gap at the new rate: what is left of a geometric gap has no memory of the old one.
    if (this.budget.tick(performance.now(), this.created)) this.countdown = this.budget.gap();
    if (this.stopInit && this.windows.log2 === 0) {
      // On for good: judge the rate over the last tick.
      this.foldObserved();
      this.rejudge();
    }
  }

  private track(promise: Promise<unknown>, site: string, shift: number): void {
    const id = this.agent.spawn('promise', null, site, 0, true, shift);
    if (id === 0) return;
    ++this.captured;
    this.ids.set(promise, id);
    this.open.add(id);
    this.collected.register(promise, id, promise);
  }
}
