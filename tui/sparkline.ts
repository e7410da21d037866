// One-line charts of a history: the last `width` samples, from their own
// minimum up, over a span of at least a tenth of the largest value, so that
// a wobble of a fraction of a percent stays a flat line instead of filling
// the chart (a flat line stays at the bottom).
const LEVELS = '▁▂▃▄▅▆▇█';
/** The smallest span drawn full height, as a share of the largest value. */
export const MIN_SPAN_SHARE = 0.1;

export function sparkline(values: readonly (number | null)[], width: number): string {
  const shown = values.slice(-Math.max(0, width));
  const known = shown.filter((v): v is number => v !== null);
  if (known.length === 0) return '';
  const min = Math.min(...known);
  const max = Math.max(...known);
  const span = Math.max(max - min, MIN_SPAN_SHARE * Math.abs(max));
  return shown
    .map((v) => {
      if (v === null) return ' ';
      const level = span === 0 ? 0 : Math.round(((v - min) / span) * (LEVELS.length - 1));
      return LEVELS[level];
    })
    .join('');
}
