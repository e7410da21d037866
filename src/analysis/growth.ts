// Is a series growing now, and has it kept growing? One judge for live bytes,
// V8 heap, threads and a site's live tasks.
//
// A whole-window trend reads a start-up ramp followed by a plateau as growth
// for as long as the ramp is in the history, and a leak that starts late as
// flat. So the judge looks at recent windows of several lengths (30 s to
// 15 min), each cut into a dozen bins, and calls a series growing only when,
// in one of those windows:
//   - the bins rise by a Mann–Kendall test (robust to noise and outliers),
//   - their Theil–Sen slope adds at least the caller's minimum over the window,
//   - each quarter of the window stands above the one before (not one step),
//   - the last quarter is a new high: above every level of the window's first
//     three quarters and of the five minutes before, by more than the bins'
//     scatter, so a level the series already reached (a sawtooth cache
//     refilling, a reload's step, a pool started once) is never growth,
//   - the growth outruns the series' own falls before the window (noise),
//   - and the second half still rises.
// Bins are summarised by their median, from 1 min windows also by their mean
// (a cache's cycle aliased by the 1 s sampling), and from 4 min windows also
// by their floor: the floor of a sawtooth is what a leak under a cache's
// churn lifts. docs/growth.md has the numbers and the shapes graded.

export interface Point {
  readonly t_ms: number;
  readonly value: number;
}

/** The windows judged, shortest first. */
export const WINDOWS_MS: readonly number[] = [30_000, 60_000, 120_000, 240_000, 480_000, 900_000];
/** Less history than this and nothing can be said. */
export const MIN_SPAN_MS = WINDOWS_MS[0] as number;
export const BINS = 12;
/** One-sided Mann–Kendall z: about p < 0.0013. */
export const MIN_Z = 3;
/** Floors span two bins, so neighbours share samples and the test needs more: about p < 0.0002. */
export const MIN_Z_FLOOR = 3.5;
/** A level reached this recently is not new. */
export const LOOKBACK_MS = 300_000;
/** The last bin's rise over the earlier bins, as a share of the window's expected growth. */
export const MIN_NEW_HIGH_SHARE = 0.08;
/** A new high must clear this many times the bins' scatter about their trend line. */
export const NEW_HIGH_SCATTERS = 2;
/** What the window's last bin adds over its first, as a share of the expected growth: it has not just dropped. */
export const MIN_ADDED_SHARE = 0.5;
/** Growth over a window must be this many times the series' 90th-percentile fall over half a window. */
export const FALL_FACTOR = 2;
/** The second half's slope, as a share of the window's: still rising now. */
export const MIN_RECENT_SHARE = 0.5;
/** Each quarter's rise over the one before, as a share of its part of the expected growth. */
export const MIN_QUARTER_SHARE = 0.25;
/** A window counts as covered when the history spans this share of it. */
const COVERED = 0.95;

export interface GrowthRule {
  /** Growth over a window smaller than this is noise, however steady. */
  readonly minGrowth: number;
  /** And smaller than this share of where the window started. */
  readonly minFraction: number;
}

export type Summary = 'median' | 'mean' | 'floor';

export type Growth =
  | { readonly status: 'pending'; readonly needMs: number; readonly spanMs: number }
  | { readonly status: 'flat'; readonly spanMs: number }
  | {
      readonly status: 'growing';
      readonly spanMs: number;
      /** The longest window judged growing. */
      readonly windowMs: number;
      /** The window's first and last bins. */
      readonly from: number;
      readonly to: number;
      readonly added: number;
      /** The median slope between samples of the window's second half, per second: the rate now. */
      readonly ratePerS: number;
      readonly summary: Summary;
    };

type Growing = Extract<Growth, { status: 'growing' }>;

interface Bin {
  readonly t_ms: number;
  readonly end_ms: number;
  readonly value: number;
}

type Pending = Extract<Growth, { status: 'pending' }>;

/** Pending while the points span less than the shortest window; null once they span it. */
export function pendingFor(points: readonly Pick<Point, 't_ms'>[]): Pending | null {
  const spanMs = points.length > 1 ? (points.at(-1) as Point).t_ms - (points[0] as Point).t_ms : 0;
  return spanMs < COVERED * MIN_SPAN_MS ? { status: 'pending', needMs: Math.ceil(COVERED * MIN_SPAN_MS - spanMs), spanMs } : null;
}

export function judgeGrowth(points: readonly Point[], rule: GrowthRule): Growth {
  const pending = pendingFor(points);
  if (pending) return pending;
  const tail = points.at(-1) as Point;
  const spanMs = tail.t_ms - (points[0] as Point).t_ms;
  let best: Growing | null = null;
  for (const windowMs of WINDOWS_MS) {
    if (spanMs < COVERED * windowMs) break;
    for (const summary of summariesFor(windowMs)) {
      const judged = judgeWindow(points, tail.t_ms, windowMs, summary, rule);
      if (judged.status === 'growing') {
        best = { ...judged, spanMs };
        break;
      }
    }
  }
  return best ?? { status: 'flat', spanMs };
}

/**
 * A mean is steadier than a median where samples alternate (a cache's cycle
 * aliased by the 1 s sampling), but a few samples' noise moves it: only from
 * bins of 5 s up.
 */
export const MIN_MEAN_WINDOW_MS = 60_000;
/** A floor needs bins long enough to hold a trough of a cache's cycle: only the longer windows have them. */
export const MIN_FLOOR_WINDOW_MS = 240_000;

function summariesFor(windowMs: number): readonly Summary[] {
  if (windowMs >= MIN_FLOOR_WINDOW_MS) return ['median', 'mean', 'floor'];
  return windowMs >= MIN_MEAN_WINDOW_MS ? ['median', 'mean'] : ['median'];
}

/** Why a window is not growth, or its growth. */
type WindowJudgement = Omit<Growing, 'spanMs'> | { readonly status: 'flat'; readonly why: string };

/** Every window's judgement on each of its summaries: what `judgeGrowth` decided from, for tests and for tuning. */
export function explainGrowth(points: readonly Point[], rule: GrowthRule): { windowMs: number; summary: Summary; judgement: WindowJudgement }[] {
  const tail = points.at(-1);
  if (!tail || pendingFor(points)) return [];
  const spanMs = tail.t_ms - (points[0] as Point).t_ms;
  return WINDOWS_MS.filter((w) => spanMs >= COVERED * w).flatMap((windowMs) =>
    summariesFor(windowMs).map((summary) => ({ windowMs, summary, judgement: judgeWindow(points, tail.t_ms, windowMs, summary, rule) })),
  );
}

function judgeWindow(points: readonly Point[], endMs: number, windowMs: number, summary: Summary, rule: GrowthRule): WindowJudgement {
  const flat = (why: string) => ({ status: 'flat', why }) as const;
  const startMs = endMs - windowMs;
  const history = binned(points, endMs, windowMs / BINS, summary);
  const all = history.filter((b) => b.end_ms > startMs - LOOKBACK_MS);
  const window = all.filter((b) => b.end_ms > startMs);
  if (window.length < BINS * 0.66) return flat('too few bins');
  const z = mannKendallZ(window.map((b) => b.value));
  if (z < (summary === 'floor' ? MIN_Z_FLOOR : MIN_Z)) return flat(`Mann–Kendall z ${z.toFixed(2)}`);
  const slope = theilSen(window);
  const expected = slope * windowMs;
  const first = window[0] as Bin;
  const last = window.at(-1) as Bin;
  if (expected < rule.minGrowth || expected < rule.minFraction * Math.abs(first.value)) return flat(`growth ${expected.toFixed(0)} below the minimum`);
  const quarters = [0, 1, 2, 3].map((q) => median(window.filter((b) => b.end_ms > startMs + (q * windowMs) / 4 && b.end_ms <= startMs + ((q + 1) * windowMs) / 4 + 1).map((b) => b.value)));
  if (!quarters.every((v, q) => q === 0 || v - (quarters[q - 1] as number) >= (MIN_QUARTER_SHARE * expected) / 4)) return flat('a quarter did not rise');
  // The last quarter, not one bin, must stand above every level reached
  // before it, compared like with like: runs of three bins at their median.
  const before = all.filter((b) => b.end_ms <= endMs - windowMs / 4 + 1).map((b) => b.value);
  const reached = Math.max(...before.map((_, i) => median(before.slice(Math.max(0, i - 2), i + 1))));
  const margin = Math.max(MIN_NEW_HIGH_SHARE * expected, NEW_HIGH_SCATTERS * scatter(window, slope));
  if ((quarters[3] as number) - reached < margin) return flat(`not a new high (${((quarters[3] as number) - reached).toFixed(0)} over, needs ${margin.toFixed(0)})`);
  if (last.value - first.value < MIN_ADDED_SHARE * expected) return flat('the last bin fell back');
  const fallen = fall(history.filter((b) => b.end_ms <= startMs), BINS / 2);
  if (expected < FALL_FACTOR * fallen) return flat(`growth ${expected.toFixed(0)} within the series' own falls (${fallen.toFixed(0)})`);
  const recent = theilSen(window.filter((b) => b.end_ms > endMs - windowMs / 2));
  if (recent < MIN_RECENT_SHARE * slope) return flat('the second half rose slower');
  const rate = rateNow(points.filter((p) => p.t_ms > endMs - windowMs / 2), windowMs / 8);
  return { status: 'growing', windowMs, from: first.value, to: last.value, added: last.value - first.value, ratePerS: rate * 1000, summary };
}

/** How far the bins stray from their Theil–Sen line, as a standard deviation (1.4826 × the median absolute residual). */
function scatter(bins: readonly Bin[], slope: number): number {
  const residuals = bins.map((b) => b.value - slope * b.t_ms);
  const centre = median(residuals);
  return 1.4826 * median(residuals.map((r) => Math.abs(r - centre)));
}

/**
 * How far the series fell, over `lag` bins, in the bins before the window
 * (the 90th percentile of its falls). A noisy but level series falls as
 * often and as far as it rises; a leak hardly falls. Growth must outrun it.
 */
function fall(before: readonly Bin[], lag: number): number {
  const falls: number[] = [];
  for (let i = 0; i + lag < before.length; i++) falls.push(Math.max(0, (before[i] as Bin).value - (before[i + lag] as Bin).value));
  if (falls.length === 0) return 0;
  falls.sort((a, b) => a - b);
  return falls[Math.floor(0.9 * (falls.length - 1))] as number;
}

/** Bins of `binMs` ending at `endMs`; empty bins are left out. Oldest first. */
function binned(points: readonly Point[], endMs: number, binMs: number, summary: Summary): Bin[] {
  const groups = new Map<number, number[]>();
  for (const p of points) {
    const k = Math.floor((endMs - p.t_ms) / binMs);
    const group = groups.get(k);
    if (group) group.push(p.value);
    else groups.set(k, [p.value]);
  }
  const bins = [...groups.entries()].sort(([a], [b]) => b - a);
  return bins.map(([k, values]) => {
    // A floor spans its bin and the one before: wide enough to hold a trough of a cache's cycle.
    const older = summary === 'floor' ? (groups.get(k + 1) ?? []) : [];
    return {
      t_ms: endMs - (k + 0.5) * binMs,
      end_ms: endMs - k * binMs,
      value: summary === 'median' ? median(values) : summary === 'mean' ? values.reduce((a, b) => a + b, 0) / values.length : Math.min(...values, ...older),
    };
  });
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * The rate now: the median slope between samples of the window's second half
 * at least `minGapMs` apart (at most 120 of them, evenly taken), which a
 * bin's phase in a sawtooth does not bias and a short swing does not sway.
 */
function rateNow(points: readonly Point[], minGapMs: number): number {
  const stride = Math.ceil(points.length / 120);
  const taken = points.filter((_, i) => i % stride === 0);
  const slopes: number[] = [];
  for (let i = 0; i < taken.length; i++)
    for (let j = i + 1; j < taken.length; j++) {
      const a = taken[i] as Point;
      const b = taken[j] as Point;
      if (b.t_ms - a.t_ms >= minGapMs) slopes.push((b.value - a.value) / (b.t_ms - a.t_ms));
    }
  return slopes.length ? median(slopes) : 0;
}

/** Median of the pairwise slopes, per millisecond. */
export function theilSen(points: readonly Point[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i++)
    for (let j = i + 1; j < points.length; j++) {
      const a = points[i] as Point;
      const b = points[j] as Point;
      if (b.t_ms !== a.t_ms) slopes.push((b.value - a.value) / (b.t_ms - a.t_ms));
    }
  return slopes.length ? median(slopes) : 0;
}

/** The Mann–Kendall trend statistic as a z score, with the variance corrected for ties; positive when rising. */
export function mannKendallZ(values: readonly number[]): number {
  const n = values.length;
  let s = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) s += Math.sign((values[j] as number) - (values[i] as number));
  const ties = new Map<number, number>();
  for (const v of values) ties.set(v, (ties.get(v) ?? 0) + 1);
  let variance = n * (n - 1) * (2 * n + 5);
  for (const t of ties.values()) variance -= t * (t - 1) * (2 * t + 5);
  variance /= 18;
  if (variance <= 0) return 0;
  return (s - Math.sign(s)) / Math.sqrt(variance);
}

/** What a detector says while the judge needs more history. */
export function pendingReason(g: Pending): string {
  return `needs ${Math.ceil(g.needMs / 1000)} s more history (has ${Math.floor(g.spanMs / 1000)} s)`;
}
