// What the process measurably holds beyond its live data: the amount every
// retention finding states, and the bound on what the agent's model may
// attribute. Anonymous RSS (the kernel's count) less the bytes live in
// malloc (the ledger's, or the allocator's own statistics) less V8's heaps.
// File-backed pages — code, mapped files — are never the heap's.
import { formatBytes } from '../format.js';
import type { Observation } from '../model/snapshot.js';

export interface HeapMeasure {
  /** Resident anonymous bytes; RSS where the kernel's split is missing (older recordings). */
  readonly anon: number;
  readonly anonSource: 'RssAnon' | 'RSS';
  /** Bytes live in malloc. */
  readonly live: number;
  readonly liveSource: 'ledger' | 'mallinfo2' | 'jemalloc stats.allocated';
  /** V8's heaps (the main isolate's and each worker's): anonymous, but not malloc's. */
  readonly v8: number;
  /** anon − live − v8, at least 0: what the allocator keeps. */
  readonly retained: number;
}

/** A Node process's V8 heaps, committed. */
export function v8HeapBytes(o: Observation): number {
  const node = o.node;
  if (!node) return 0;
  return node.workers.reduce((sum, w) => sum + w.v8_heap.total_bytes, node.v8_heap.total_bytes);
}

/** One of the allocator's own numeric statistics (`allocator.stats`), or null. */
export function allocatorStat(o: Observation, key: string): number | null {
  const v = o.allocator.stats[key];
  return typeof v === 'number' ? v : null;
}

/** Bytes live in malloc by the allocator's own count: for a ledger that began late. */
function allocatorLive(o: Observation): { live: number; source: HeapMeasure['liveSource'] } | null {
  if (o.allocator.name === 'glibc') {
    const inUse = allocatorStat(o, 'mallinfo2.in_use_bytes');
    if (inUse !== null) return { live: inUse + (allocatorStat(o, 'mallinfo2.mmap_bytes') ?? 0), source: 'mallinfo2' };
  }
  if (o.allocator.name === 'jemalloc') {
    const allocated = allocatorStat(o, 'allocated_bytes');
    if (allocated !== null) return { live: allocated, source: 'jemalloc stats.allocated' };
  }
  return null;
}

/** Null when nothing says what is live (no agent, or a late ledger and an allocator without statistics). */
export function measureHeap(o: Observation): HeapMeasure | null {
  const memory = o.process.memory;
  const anon = memory ? memory.anon_bytes : o.process.rss_bytes;
  const fromLedger = o.allocator.live_bytes !== null && !o.allocator.counted_since ? { live: o.allocator.live_bytes, source: 'ledger' as const } : null;
  const counted = fromLedger ?? allocatorLive(o);
  if (!counted) return null;
  const v8 = v8HeapBytes(o);
  return {
    anon,
    anonSource: memory ? 'RssAnon' : 'RSS',
    live: counted.live,
    liveSource: counted.source,
    v8,
    retained: Math.max(0, anon - counted.live - v8),
  };
}

/** The measurement, said once the same way in every finding. */
export function describeMeasure(m: HeapMeasure): string {
  const what = m.anonSource === 'RssAnon' ? 'anonymous RSS' : 'RSS';
  return `${what} ${formatBytes(m.anon)}, live ${formatBytes(m.live)} (${m.liveSource})${m.v8 > 0 ? `, V8 heaps ${formatBytes(m.v8)}` : ''}`;
}

/** What the measurement was taken from, for a finding's `measured.source`. */
export function measureSource(m: HeapMeasure): string {
  return `${m.anonSource} − live (${m.liveSource})${m.v8 > 0 ? ' − V8 heaps' : ''}`;
}

/**
 * The live bytes a header shows: the ledger's, or, where the ledger began
 * late (an agent loaded by pid), the allocator's own count of the whole
 * heap with its source; null when neither says.
 */
export function headerLive(o: Observation): { bytes: number; source: string | null } | null {
  if (o.allocator.live_bytes === null) return null;
  if (!o.allocator.counted_since) return { bytes: o.allocator.live_bytes, source: null };
  const whole = allocatorLive(o);
  return whole ? { bytes: whole.live, source: whole.source } : { bytes: o.allocator.live_bytes, source: 'since attach' };
}
