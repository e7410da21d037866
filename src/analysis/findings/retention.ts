// retention: the process holds far more anonymous memory than is live in
// malloc and in V8, while live bytes are flat. The program freed the memory;
// the allocator kept it. Not a leak. The amount is measured (measured.ts);
// the allocator-specific findings say where, from its own statistics; this
// one names no other finding, which may not have fired.
import { formatBytes, formatDuration } from '../../format.js';
import { remoteFreeReclaim } from '../../model/allocators.js';
import type { Cause, Observation } from '../../model/snapshot.js';
import { type CheckResult, found, OK, processSubject, threadLabel, type Thresholds, undecided } from '../detector.js';
import { allocatorStat, describeMeasure, type HeapMeasure, measureHeap, measureSource } from '../measured.js';

export const id = 'retention';
export const cause: Cause = 'allocator-retention';
export const MIN_RETAINED_BYTES = 64 * 1024 * 1024;
/** Anonymous memory (V8's aside) at least this many times live bytes. */
export const MIN_ANON_TO_LIVE = 2;
export const MIN_SAMPLES = 3;
/** The window over which live bytes must be flat: the state now, so that a
 *  burst a minute ago does not hide retention for as long as it stays in view. */
export const FLAT_WINDOW_SAMPLES = 5;
/** "Flat": live bytes moved less than this share, or less than FLAT_TOLERANCE_BYTES. */
export const FLAT_TOLERANCE_FRACTION = 0.05;
export const FLAT_TOLERANCE_BYTES = 4 * 1024 * 1024;


const num = (o: Observation, key: string): number => allocatorStat(o, key) ?? 0;

/** Where the allocator keeps it, in its own numbers where it states them. */
export function where(o: Observation): string {
  const a = o.allocator;
  switch (a.name) {
    case 'glibc': {
      const free = num(o, 'mallinfo2.free_bytes');
      return free > 0
        ? `free chunks inside glibc's arenas (glibc counts ${formatBytes(free)} free: mallinfo2)`
        : "free chunks inside glibc's arenas";
    }
    case 'jemalloc': {
      const frag = Math.max(0, num(o, 'active_bytes') - num(o, 'allocated_bytes'));
      const dirty = a.arenas.reduce((s, x) => s + (x.dirty_bytes ?? 0), 0);
      const muzzy = a.arenas.reduce((s, x) => s + Math.max(0, x.free_bytes - (x.dirty_bytes ?? 0)), 0);
      return (
        `jemalloc: ${formatBytes(frag)} free inside slabs that still hold live blocks (active − allocated), ` +
        `${formatBytes(dirty)} of dirty and ${formatBytes(muzzy)} of muzzy pages, by jemalloc's own statistics`
      );
    }
    case 'mimalloc':
      return remoteFreeReclaim(a.name, a.version) === 'none'
        ? `mimalloc${a.version ? ` ${a.version}` : ''} pages that hold blocks other threads freed, which nothing has reused yet`
        : 'mimalloc pages holding blocks that other threads freed, until their owner threads take them back';
    case 'tcmalloc':
      return 'the tcmalloc page heap and thread caches';
    default:
      return 'the allocator';
  }
}

/** What would give it back, from the allocator's own numbers here (never pointing at a finding that may not have fired). */
function remedy(o: Observation): string {
  const pid = String(o.pid);
  switch (o.allocator.name) {
    case 'glibc':
      return `Run 'leakscope reclaim ${pid}' (malloc_trim) to see how much comes back; MALLOC_ARENA_MAX=2 keeps it lower.`;
    case 'jemalloc': {
      const frag = Math.max(0, num(o, 'active_bytes') - num(o, 'allocated_bytes'));
      const dirty = o.allocator.arenas.reduce((s, x) => s + (x.dirty_bytes ?? 0), 0);
      return (
        `'leakscope reclaim ${pid}' purges jemalloc's dirty pages (${formatBytes(dirty)} now); ` +
        (frag > 0
          ? `the ${formatBytes(frag)} free inside slabs that still hold live blocks does not go back by purging: it is reused by allocations of the same sizes.`
          : 'background threads (MALLOC_CONF=background_thread:true) purge them as they decay.')
      );
    }
    case 'mimalloc': {
      if (remoteFreeReclaim(o.allocator.name, o.allocator.version) === 'none')
        return 'Allocate and free on the same thread where you can; the memory is reused by the next allocations, so it is a cost, not growth.';
      const owner = [...o.threads]
        .filter((t) => (t.heap?.unreclaimed_bytes ?? 0) > 0)
        .sort((a, b) => (b.heap?.unreclaimed_bytes ?? 0) - (a.heap?.unreclaimed_bytes ?? 0))[0];
      return owner
        ? `${threadLabel(owner)} holds ${formatBytes(owner.heap!.unreclaimed_bytes!)} that other threads freed and only it can take back: it must run (any allocation does), or free on the allocating thread.`
        : `Blocks other threads freed wait for their owner threads; 'leakscope reclaim ${pid}' (mi_collect) shows how much comes back.`;
    }
    case 'tcmalloc':
      return 'Release memory with MallocExtension::ReleaseFreeMemory(), or lower TCMALLOC_RELEASE_RATE.';
    default:
      return 'Check what the allocator offers to release free memory.';
  }
}

export function summary(retained: number): string {
  return `${formatBytes(retained)} of RSS is not live data: the allocator keeps memory the program freed`;
}

export function message(o: Observation, m: HeapMeasure, flatMs: number | null): string {
  const file = o.process.memory ? ` (RSS ${formatBytes(o.process.rss_bytes)}; file-backed pages, code and mapped files, are not counted)` : '';
  const flat = flatMs === null ? '' : `, and live bytes have been flat for ${formatDuration(flatMs)}`;
  return (
    `Measured: ${describeMeasure(m)}${file}${flat}. The other ${formatBytes(m.retained)} is held by ${where(o)}. ` +
    'This is retention, not a leak.'
  );
}

/**
 * Whether live bytes are flat now (the last few samples), and for how long
 * they have been: the longest stretch at the end of the history that stays
 * within the tolerance. Null without enough history.
 */
function flatFor(o: Observation): { flat: boolean; ms: number } | null {
  const points = o.history.flatMap((h) => (h.live_bytes === null ? [] : [{ t: h.t_ms, v: h.live_bytes }]));
  const window = points.slice(-FLAT_WINDOW_SAMPLES);
  if (window.length < MIN_SAMPLES) return null;
  const within = (min: number, max: number) => max - min <= Math.max(FLAT_TOLERANCE_BYTES, FLAT_TOLERANCE_FRACTION * max);
  const values = window.map((p) => p.v);
  if (!within(Math.min(...values), Math.max(...values))) return { flat: false, ms: 0 };
  let min = Infinity;
  let max = -Infinity;
  let start = points.length - 1;
  for (let i = points.length - 1; i >= 0; i--) {
    min = Math.min(min, points[i]!.v);
    max = Math.max(max, points[i]!.v);
    if (!within(min, max)) break;
    start = i;
  }
  return { flat: true, ms: points.at(-1)!.t - points[start]!.t };
}

export function check(o: Observation, _thresholds: Thresholds): CheckResult {
  if (o.agent.mode === 'proc') return undecided('needs the agent: live bytes come from its ledger or the allocator inside the process');
  const m = measureHeap(o);
  if (!m)
    return undecided("live bytes are counted from attach only and this allocator states none of its own; comparing them with RSS needs a ledger from the start ('leakscope run')");
  const history = m.liveSource === 'ledger' ? flatFor(o) : null;
  if (m.liveSource === 'ledger' && !history) return undecided(`needs ${MIN_SAMPLES} s of history`);
  if (history && !history.flat) return OK;
  if (m.retained < MIN_RETAINED_BYTES || m.anon - m.v8 < MIN_ANON_TO_LIVE * m.live) return OK;
  return found([
    {
      id,
      severity: 'info',
      summary: summary(m.retained),
      message: message(o, m, history?.ms ?? null),
      subject: processSubject(o),
      value: m.retained,
      unit: 'bytes',
      remedy: remedy(o),
      measured: { bytes: m.retained, source: measureSource(m) },
      modelled_bytes: null,
    },
  ]);
}
