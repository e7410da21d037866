// Pending promises by creation site, through v8.promiseHooks (no
// async_hooks). A hook runs for every promise, so it does almost nothing:
// a countdown picks the promises whose site is captured, at a rate that
// adapts so that capturing costs a bounded share of the time. Each captured
// promise is one task in the agent standing for 2^k promises, k the sampling
// shift when it was taken; while promises come slower than the budget, k is
// 0 and the counts are exact.
import { promiseHooks } from 'node:v8';
import { inspect } from 'node:util';
import type { NodeRuntime } from '../model/snapshot.js' with { 'resolution-mode': 'import' };
import type { NativeAgent } from './native.cjs';
import { captureSite } from './sites.cjs';
import { EXISTED_AT_ATTACH_SITE } from './timers.cjs';

/** Sites captured per second at most before sampling doubles its interval. */
export const CAPTURE_BUDGET_PER_S = 2000;
const MAX_SHIFT = 20;

/** The snapshot's `node.promises` (src/model/snapshot.ts is the contract). */
export type PromiseFacts = NodeRuntime['promises'];

export class PromiseTracker {
  private stopHooks: (() => void) | null = null;
  private readonly ids = new WeakMap<object, number>();
  /** Ids of tasks not yet completed, so that going dormant can end them all. */
  private readonly open = new Set<number>();
  private readonly collected: FinalizationRegistry<number>;
  private shift = 0;
  private countdown = 1;
  private windowStart = 0;
  private windowCaptures = 0;
  private created = 0;
  private captured = 0;
  private existedAtAttach = 0;
  private collectedPending = 0;

  /** `onCapture` runs at each captured site: a cheap moment to look for things registered since (a tracer provider). */
  constructor(
    private readonly agent: NativeAgent,
    private readonly onCapture: () => void = () => undefined,
  ) {
    // A pending promise nobody can reach any more is gone, not leaked.
    this.collected = new FinalizationRegistry((id) => {
      if (this.open.delete(id)) {
        ++this.collectedPending;
        this.agent.complete(id);
      }
    });
  }

  get hooked(): boolean {
    return this.stopHooks !== null;
  }

  start(): void {
    if (this.stopHooks) return;
    this.stopHooks = promiseHooks.createHook({
      init: (promise) => this.created_(promise),
      settled: (promise) => this.settled(promise),
    }) as () => void;
  }

  /** Hooks off; every task still open ends, since nothing would end it now. */
  stop(): void {
    this.stopHooks?.();
    this.stopHooks = null;
    for (const id of this.open) this.agent.complete(id);
    this.open.clear();
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
      sample_interval: 2 ** this.shift,
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
    this.open.delete(id);
    this.agent.complete(id);
  }

  private sampleTaken(promise: Promise<unknown>): void {
    const now = performance.now();
    if (now - this.windowStart >= 1000) {
      if (this.windowCaptures < CAPTURE_BUDGET_PER_S / 4 && this.shift > 0) --this.shift;
      this.windowStart = now;
      this.windowCaptures = 0;
    } else if (this.windowCaptures >= CAPTURE_BUDGET_PER_S && this.shift < MAX_SHIFT) {
      ++this.shift;
      this.windowCaptures = 0;
    }
    ++this.windowCaptures;
    const interval = 2 ** this.shift;
    // Geometric gaps (not every n-th) so that a program's own period of
    // promise creation cannot hide one site from the sample.
    this.countdown = interval === 1 ? 1 : Math.max(1, Math.ceil(-Math.log(1 - Math.random()) * interval));
    this.track(promise, captureSite(), this.shift);
    this.onCapture();
  }

  private track(promise: Promise<unknown>, site: string, shift: number): void {
    const id = this.agent.spawn('promise', null, site, 0, true, shift);
    if (id === 0) return;
    ++this.captured;
    this.ids.set(promise, id);
    this.open.add(id);
    this.collected.register(promise, id);
  }
}
