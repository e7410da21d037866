// retention: RSS far above live bytes while live bytes are flat. The
// program freed the memory; the allocator kept it. Not a leak. The
// allocator-specific findings say where; this one says how much in all.
import { formatBytes, formatDuration } from '../../format.js';
import type { AllocatorName, Cause, Observation } from '../../model/snapshot.js';
import { type CheckResult, found, OK, processSubject, type Thresholds, undecided } from '../detector.js';
import { trendOf } from '../trend.js';

export const id = 'retention';
export const cause: Cause = 'allocator-retention';
export const MIN_RETAINED_BYTES = 64 * 1024 * 1024;
/** RSS at least this many times live bytes. */
export const MIN_RSS_TO_LIVE = 2;
export const MIN_SAMPLES = 3;
/** The window over which live bytes must be flat: the state now, so that a
 *  burst a minute ago does not hide retention for as long as it stays in view. */
export const FLAT_WINDOW_SAMPLES = 5;
/** "Flat": live bytes moved less than this share, or less than FLAT_TOLERANCE_BYTES. */
export const FLAT_TOLERANCE_FRACTION = 0.05;
export const FLAT_TOLERANCE_BYTES = 4 * 1024 * 1024;

const WHERE: Readonly<Record<AllocatorName, string>> = {
  glibc: 'free chunks inside glibc arenas (see arena-fragmentation)',
  mimalloc: 'mimalloc pages waiting for their owner threads (see sleeping-owner)',
  jemalloc: 'jemalloc dirty pages and thread caches (see idle-dirty-pages)',
  tcmalloc: 'tcmalloc page heap and thread caches',
  unknown: 'the allocator',
};

const REMEDIES: Readonly<Record<AllocatorName, string>> = {
  glibc: "Run 'leakscope reclaim <pid>' (malloc_trim) to see how much comes back; MALLOC_ARENA_MAX=2 keeps it lower.",
  mimalloc: 'Follow the sleeping-owner findings: the owner threads must run, or free on the allocating thread.',
  jemalloc: "Run 'leakscope reclaim <pid>' (arena purge); MALLOC_CONF=background_thread:true keeps it lower.",
  tcmalloc: 'Release memory with MallocExtension::ReleaseFreeMemory(), or lower TCMALLOC_RELEASE_RATE.',
  unknown: 'Check what the allocator offers to release free memory.',
};

export function summary(retained: number): string {
  return `${formatBytes(retained)} of RSS is not live data: the allocator keeps memory the program freed`;
}

/** A Node process's V8 heaps (the main isolate's and each worker's): RSS, but not the allocator's to keep. */
export function v8HeapBytes(o: Observation): number {
  const node = o.node;
  if (!node) return 0;
  return node.workers.reduce((sum, w) => sum + w.v8_heap.total_bytes, node.v8_heap.total_bytes);
}

export function message(o: Observation, live: number, retained: number, flatMs: number): string {
  const v8 = v8HeapBytes(o);
  return (
    `RSS is ${formatBytes(o.process.rss_bytes)} but only ${formatBytes(live)} is live (allocated and not freed)` +
    `${v8 > 0 ? ` and V8's heaps hold ${formatBytes(v8)}` : ''}, ` +
    `and live bytes have been flat for ${formatDuration(flatMs)}. The other ${formatBytes(retained)} is held by ` +
    `${WHERE[o.allocator.name]}. This is retention, not a leak.`
  );
}

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  const live = o.allocator.live_bytes;
  if (live === null) return undecided('needs the agent: live bytes come from its ledger');
  if (o.allocator.counted_since)
    return undecided("live bytes are counted from attach only; comparing them with RSS needs a ledger from the start ('leakscope run')");
  const window = o.history.slice(-FLAT_WINDOW_SAMPLES);
  const trend = trendOf(window.flatMap((h) => (h.live_bytes === null ? [] : [{ t_ms: h.t_ms, value: h.live_bytes }])));
  if (!trend || trend.samples < MIN_SAMPLES) return undecided(`needs ${MIN_SAMPLES} s of history`);
  const flat = trend.max - trend.min <= Math.max(FLAT_TOLERANCE_BYTES, FLAT_TOLERANCE_FRACTION * trend.max);
  // What is neither live nor V8's is what the allocator keeps.
  const held = o.process.rss_bytes - v8HeapBytes(o);
  const retained = held - live;
  if (!flat || retained < MIN_RETAINED_BYTES || held < MIN_RSS_TO_LIVE * live) return OK;
  return found([
    {
      id,
      severity: 'info',
      summary: summary(retained),
      message: message(o, live, retained, trend.spanMs),
      subject: processSubject(o),
      value: retained,
      unit: 'bytes',
      remedy: REMEDIES[o.allocator.name].replace('<pid>', String(o.pid)),
    },
  ]);
}
