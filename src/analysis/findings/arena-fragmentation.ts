// arena-fragmentation: glibc keeps free chunks inside its arenas; a few
// long-lived blocks scattered through a heap pin its pages, so RSS stays
// after a burst. malloc_trim(0) returns whole free pages (glibc >= 2.8).
import { formatBytes } from '../../format.js';
import type { Arena, Cause, Observation } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds, undecided } from '../detector.js';
import { describeMeasure, type HeapMeasure, measureHeap } from '../measured.js';

export const id = 'arena-fragmentation';
export const cause: Cause = 'allocator-retention';
/** Retained bytes below this are not worth a finding. */
export const MIN_RETAINED_BYTES = 32 * 1024 * 1024;
/** Free share of what the arenas map, at least. */
export const MIN_FREE_FRACTION = 0.5;

export function summary(retained: number, arenas: number): string {
  return `${formatBytes(retained)} free inside ${arenas} glibc arena${arenas === 1 ? '' : 's'} cannot go back to the system`;
}

export function message(o: Observation, retained: number, mapped: number, free: number, worst: Arena, m: HeapMeasure | null): string {
  return (
    `glibc's ${o.allocator.arenas.length} arenas map ${formatBytes(mapped)} of which ${formatBytes(mapped - free)} is in use; ` +
    `${formatBytes(free)} (${Math.round((100 * free) / mapped)}%) is free chunks held between live blocks, ` +
    `arena ${worst.index} alone ${formatBytes(worst.free_bytes)}. ` +
    (m ? `Measured: ${describeMeasure(m)}, ` : `RSS is ${formatBytes(o.process.rss_bytes)}, `) +
    `so about ${formatBytes(retained)} is fragmentation, not a leak.`
  );
}

export function remedy(pid: number): string {
  return (
    `Run 'leakscope reclaim ${pid}' (malloc_trim(0)) to give the free pages back now; set MALLOC_ARENA_MAX=2 to limit arenas, ` +
    `or use jemalloc or mimalloc, to keep it from coming back.`
  );
}

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  if (o.allocator.name !== 'glibc') return OK;
  if (o.agent.mode === 'proc') return undecided("needs the agent: arena statistics come from malloc_info inside the process");
  const arenas = o.allocator.arenas;
  const worst = [...arenas].sort((a, b) => b.free_bytes - a.free_bytes)[0];
  if (!worst) return OK;
  const mapped = arenas.reduce((sum, a) => sum + a.mapped_bytes, 0);
  const free = arenas.reduce((sum, a) => sum + a.free_bytes, 0);
  // glibc's counters do not move when malloc_trim returns pages: what the
  // process measurably holds beyond live data bounds what is really retained.
  const m = measureHeap(o);
  const retained = m ? Math.min(free, m.retained) : free;
  if (retained < MIN_RETAINED_BYTES || mapped === 0 || free / mapped < MIN_FREE_FRACTION) return OK;
  return found([
    {
      id,
      severity: 'warn',
      summary: summary(retained, arenas.length),
      message: message(o, retained, mapped, free, worst, m),
      subject: { kind: 'arena', id: String(worst.index), label: `arena ${worst.index}` },
      value: retained,
      unit: 'bytes',
      remedy: remedy(o.pid),
      measured: { bytes: retained, source: m ? "glibc arenas' free chunks (malloc_info), at most RssAnon − live" : "glibc arenas' free chunks (malloc_info)" },
      modelled_bytes: null,
    },
  ]);
}
