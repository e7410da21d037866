// When the promise tracker's init hook is on. v8.promiseHooks calls the init
// hook for every promise the program creates, and the call itself is the
// cost: on the benchmark's HTTP service (about 700,000 promises a second)
// the init hook alone took 10 % of the time, whatever it did inside. So it
// is on all the time only while its calls would take at most
// INIT_HOOK_SHARE of the time. Above that it is on in windows of
// INIT_WINDOW_MS, one in 2^log2 of the time on average (off for
// exponential gaps, so that no period of the program's lines up with
// them), and each promise seen stands for 2^log2 more in every count. The
// settled hook stays on throughout: a promise seen is followed to its end.
// Pure arithmetic on the times it is given, so it is tested without a clock.

/** What one init-hook call costs the program (measured on the benchmark machine: 10.5 % at 700,000 promises/s). */
export const INIT_HOOK_COST_NS = 150;
/** The share of wall time the init hook's calls may take, sustained. */
export const INIT_HOOK_SHARE = 0.02;
/** How long the init hook stays on in a window. */
export const INIT_WINDOW_MS = 5;
/** At most one window in 2^MAX_LOG2 of the time (mean gap 315 ms): a quiet program is seen dense again soon. */
export const MAX_LOG2 = 6;
/** Denser only to where the hook would take this part of the share, so that it does not swing back and forth. */
const DENSER_HEADROOM = 0.75;
/**
 * The rate is judged from at least this much time with the hook on (five
 * windows): one window can fall on a pause or a GC and see nothing.
 */
export const MIN_ON_MS = 5 * INIT_WINDOW_MS;

export class InitWindows {
  /** The init hook is on one window in 2^log2; 0: all the time. */
  log2 = 0;
  /** The largest log2 since `reset()`. */
  sparsest = 0;
  private onMs = 0;
  private seen = 0;

  /** Recording starts again. */
  reset(): void {
    this.sparsest = this.log2;
  }

  /** The hook was on for `onMs` and saw `created` promises. */
  observed(created: number, onMs: number): void {
    this.seen += created;
    this.onMs += onMs;
  }

  /** A new log2 from the promise rate seen while the hook was on; true when it changed. */
  decide(): boolean {
    if (this.onMs < MIN_ON_MS) return false;
    const share = (this.seen / this.onMs) * 1000 * INIT_HOOK_COST_NS * 1e-9;
    this.seen = 0;
    this.onMs = 0;
    const sparser = log2For(share, INIT_HOOK_SHARE);
    const target = sparser > this.log2 ? sparser : Math.min(this.log2, log2For(share, INIT_HOOK_SHARE * DENSER_HEADROOM));
    if (target === this.log2) return false;
    this.log2 = target;
    this.sparsest = Math.max(this.sparsest, target);
    return true;
  }

  /** The hook's next time off: exponential, with the mean that makes it on one window in 2^log2. */
  offMs(random: number = Math.random()): number {
    const mean = INIT_WINDOW_MS * (2 ** this.log2 - 1);
    return -Math.log(1 - random) * mean;
  }
}

function log2For(share: number, allowed: number): number {
  return share <= allowed ? 0 : Math.min(MAX_LOG2, Math.ceil(Math.log2(share / allowed)));
}
