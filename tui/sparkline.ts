// One-line charts of a history: the last `width` samples, scaled between
// their own minimum and maximum (a flat line stays at the bottom).
const LEVELS = '▁▂▃▄▅▆▇█';

export function sparkline(values: readonly (number | null)[], width: number): string {
  const shown = values.slice(-Math.max(0, width));
  const known = shown.filter((v): v is number => v !== null);
  if (known.length === 0) return '';
  const min = Math.min(...known);
  const span = Math.max(...known) - min;
  return shown
    .map((v) => {
      if (v === null) return ' ';
      const level = span === 0 ? 0 : Math.round(((v - min) / span) * (LEVELS.length - 1));
      return LEVELS[level];
    })
    .join('');
}
