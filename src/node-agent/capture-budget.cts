// How often the promise tracker captures a site. Capturing costs 10–40 µs (a
// stack trace, deeper in a real server), and a busy service creates millions
// of promises a second, so the time captures take (the thread's CPU time:
// promises.cts times them) is budgeted: a burst allowance of
// CAPTURE_BURST_MS, refilled at CAPTURE_TIME_SHARE of the wall clock. While
// it lasts every promise is captured (exact counts); once spent, it allows a
// new burst only when it has refilled whole. Meanwhile one promise in
// 2^shift is captured, the shift chosen from the measured promise rate and
// capture cost so that captures take the share.
// Pure arithmetic on the times it is given, so it is tested without a clock.

/** The share of wall time that capturing sites may take, sustained. */
export const CAPTURE_TIME_SHARE = 0.01;
/** Capture time a burst may take before sampling starts (refilled at the share above). */
export const CAPTURE_BURST_MS = 50;
/** Once the burst is spent, the promise rate is measured over steps this long. */
export const SPARSER_STEP_MS = 20;
/** How often `tick()` should run: it makes sampling denser again where the share allows. */
export const DENSER_WINDOW_MS = 250;
/** Denser only to where captures would take this part of the share, so that it does not swing back and forth. */
const DENSER_HEADROOM = 0.75;
export const MAX_SHIFT = 20;
/** A first guess of a capture's cost, until captures have been timed. */
const INITIAL_COST_MS = 0.02;
/** The cost is a moving average; one capture counts at most this many times the average (a GC pause is not the capture's cost). */
const COST_OUTLIER = 4;
const COST_SMOOTHING = 0.05;

export class CaptureBudget {
  /** One promise in 2^shift is captured. */
  shift = 0;
  /** The largest shift since `reset()`: counts are estimates once it is above 0. */
  sparsest = 0;
  /** Time captures have taken in all. */
  spentMs = 0;
  private costMs = INITIAL_COST_MS;
  private bucketMs = CAPTURE_BURST_MS;
  /**
   * Captures are spending the burst allowance: all of them are taken. Over
   * once the allowance is spent, and back only when it has refilled whole:
   * on a loaded machine every wait for a CPU refills it a little (the share
   * is of the wall clock), and a burst that came back with each of those
   * would keep the rate from ever being measured.
   */
  private bursting = true;
  private lastRefill: number;
  private stepStart: number;
  private stepCreated = 0;
  private windowStart: number;
  private windowCreated = 0;

  constructor(now: number) {
    this.lastRefill = this.stepStart = this.windowStart = now;
  }

  /** Recording starts again: estimates from before are gone with the tasks they made. */
  reset(): void {
    this.sparsest = this.shift;
  }

  /**
   * A capture took `tookMs`, ending at `now`; `created` promises so far.
   * True when the shift changed.
   */
  captured(tookMs: number, now: number, created: number): boolean {
    this.refill(now);
    this.bucketMs = Math.max(0, this.bucketMs - tookMs);
    this.spentMs += tookMs;
    this.costMs += (Math.min(tookMs, COST_OUTLIER * this.costMs) - this.costMs) * COST_SMOOTHING;
    if (this.bucketMs === 0) this.bursting = false;
    if (this.bursting) {
      // Still within the burst: the rate that counts is the one after it.
      this.stepStart = now;
      this.stepCreated = created;
      return false;
    }
    const stepMs = now - this.stepStart;
    if (stepMs < SPARSER_STEP_MS) return false;
    const target = this.shiftFor(created - this.stepCreated, stepMs, CAPTURE_TIME_SHARE);
    this.stepStart = now;
    this.stepCreated = created;
    if (target <= this.shift) return false;
    this.shift = target;
    this.sparsest = Math.max(this.sparsest, target);
    return true;
  }

  /**
   * Every DENSER_WINDOW_MS, from a timer (not from captures: after a flood a
   * sparse sample could wait for millions of promises before the next
   * capture). True when the shift changed.
   */
  tick(now: number, created: number): boolean {
    const windowMs = now - this.windowStart;
    if (windowMs <= 0) return false;
    this.refill(now);
    const target = this.shiftFor(created - this.windowCreated, windowMs, CAPTURE_TIME_SHARE * DENSER_HEADROOM);
    this.windowStart = now;
    this.windowCreated = created;
    if (target >= this.shift) return false;
    this.shift = target;
    return true;
  }

  /** Promises until the next capture: geometric with p = 2^-shift (so a program's own period cannot hide a site). */
  gap(random: number = Math.random()): number {
    if (this.shift === 0) return 1;
    return 1 + Math.floor(Math.log(1 - random) / Math.log1p(-(2 ** -this.shift)));
  }

  /** The smallest shift at which `promises` in `ms` would take at most `share` of the time to capture. */
  private shiftFor(promises: number, ms: number, share: number): number {
    const interval = (promises * this.costMs) / (ms * share);
    return interval <= 1 ? 0 : Math.min(MAX_SHIFT, Math.ceil(Math.log2(interval)));
  }

  private refill(now: number): void {
    this.bucketMs = Math.min(CAPTURE_BURST_MS, this.bucketMs + Math.max(0, now - this.lastRefill) * CAPTURE_TIME_SHARE);
    this.lastRefill = now;
    if (this.bucketMs === CAPTURE_BURST_MS) this.bursting = true;
  }
}
