// slab-fragmentation: jemalloc pages that still hold live blocks, mostly
// free. Pages are "active" while any block in them is live; a workload that
// frees most of its small blocks but not all (a cache that evicted 80% of
// its keys) leaves active pages that are mostly holes. Purging returns dirty
// pages, never these: only moving the live blocks does. By jemalloc's own
// statistics (stats.active − stats.allocated), bounded by what the process
// measurably holds beyond its live data.
import { formatBytes } from '../../format.js';
import type { Arena, Cause, Observation } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds, undecided } from '../detector.js';
import { allocatorStat, describeMeasure, type HeapMeasure, measureHeap } from '../measured.js';

export const id = 'slab-fragmentation';
export const cause: Cause = 'allocator-retention';
/** Fragmented bytes below this are not worth a finding. */
export const MIN_FRAGMENTED_BYTES = 32 * 1024 * 1024;
/** And below this share of active pages: a few percent is jemalloc's normal cost. */
export const MIN_FRAGMENTED_FRACTION = 0.3;

export function summary(bytes: number, active: number): string {
  return `${formatBytes(bytes)} free inside jemalloc pages that still hold live blocks (${Math.round((100 * bytes) / active)}% of its active pages)`;
}

export function message(o: Observation, bytes: number, active: number, allocated: number, worst: Arena | undefined, m: HeapMeasure | null): string {
  const arena = worst?.fragmented_bytes ? ` Arena ${worst.index} alone has ${formatBytes(worst.fragmented_bytes)}.` : '';
  return (
    `jemalloc's statistics: ${formatBytes(active)} of pages are active (hold at least one live block) but only ${formatBytes(allocated)} is allocated, ` +
    `so ${formatBytes(bytes)} is free space scattered between live blocks.${arena} Purging ('leakscope reclaim ${o.pid}', background threads, decay) ` +
    `cannot return it: a page goes back only once every block in it is freed.${m ? ` Measured: ${describeMeasure(m)}.` : ''} ` +
    'This is fragmentation, not a leak.'
  );
}

export const REMEDY =
  'Move the live blocks so whole pages empty: defragment where the program supports it with a jemalloc that does ' +
  "(redis: 'CONFIG SET activedefrag yes', which needs redis's bundled jemalloc, not a system one), or rebuild the long-lived data " +
  '(a restart, a copy into fresh blocks); fewer arenas (MALLOC_CONF=narenas:2) keep it lower.';

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  if (o.allocator.name !== 'jemalloc') return OK;
  if (o.agent.mode === 'proc') return undecided('needs the agent: slab statistics come from mallctl inside the process');
  const active = allocatorStat(o, 'active_bytes');
  const allocated = allocatorStat(o, 'allocated_bytes');
  if (active === null || allocated === null) return undecided('needs jemalloc statistics (stats.active, stats.allocated), which this jemalloc did not give');
  const m = measureHeap(o);
  const fragmented = Math.max(0, active - allocated);
  // What RSS measurably holds beyond live data bounds what jemalloc counts.
  const bytes = m ? Math.min(fragmented, m.retained) : fragmented;
  if (bytes < MIN_FRAGMENTED_BYTES || fragmented < MIN_FRAGMENTED_FRACTION * active) return OK;
  const worst = [...o.allocator.arenas].sort((a, b) => (b.fragmented_bytes ?? 0) - (a.fragmented_bytes ?? 0))[0];
  return found([
    {
      id,
      severity: 'warn',
      summary: summary(bytes, active),
      message: message(o, bytes, active, allocated, worst, m),
      subject: worst ? { kind: 'arena', id: String(worst.index), label: `arena ${worst.index}` } : { kind: 'process', id: String(o.pid), label: `pid ${o.pid}` },
      value: bytes,
      unit: 'bytes',
      remedy: REMEDY,
      measured: { bytes, source: m ? 'jemalloc stats.active − stats.allocated, at most RssAnon − live' : 'jemalloc stats.active − stats.allocated' },
      modelled_bytes: null,
    },
  ]);
}
