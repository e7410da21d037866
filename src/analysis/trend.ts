// The shape of a series over the history: is it rising, flat, how fast.

export interface Point {
  readonly t_ms: number;
  readonly value: number;
}

export interface Trend {
  readonly samples: number;
  readonly spanMs: number;
  readonly first: number;
  readonly last: number;
  readonly min: number;
  readonly max: number;
  /** Fraction of steps that did not go down. */
  readonly risingFraction: number;
  /** Least-squares slope, per second. */
  readonly slopePerS: number;
}

export function trendOf(points: readonly Point[]): Trend | null {
  const n = points.length;
  const head = points[0];
  const tail = points[n - 1];
  if (!head || !tail) return null;
  let rising = 0;
  let min = Infinity;
  let max = -Infinity;
  let sumT = 0;
  let sumV = 0;
  for (let i = 0; i < n; i++) {
    const p = points[i] as Point;
    min = Math.min(min, p.value);
    max = Math.max(max, p.value);
    sumT += p.t_ms;
    sumV += p.value;
    if (i > 0 && p.value >= (points[i - 1] as Point).value) rising++;
  }
  const meanT = sumT / n;
  const meanV = sumV / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t_ms - meanT) * (p.value - meanV);
    den += (p.t_ms - meanT) ** 2;
  }
  return {
    samples: n,
    spanMs: tail.t_ms - head.t_ms,
    first: head.value,
    last: tail.value,
    min,
    max,
    risingFraction: n > 1 ? rising / (n - 1) : 0,
    slopePerS: den > 0 ? (num / den) * 1000 : 0,
  };
}
