// sleeping-owner: under mimalloc 2.x, a block freed by another thread waits
// on its page's thread-free list until the page's owner thread takes it
// back (mimalloc docs, "Performance": delayed free). An owner that sleeps
// keeps all of it. Which versions, and how much one call gives back, is in
// model/allocators.ts. The amount is measured: the bytes the agent saw other
// threads free into an idle owner's blocks, bounded by what the process
// holds beyond its live data (measured.ts); quiet where nothing waits for an
// owner (glibc, jemalloc, mimalloc 3).
import { formatBytes, formatDuration } from '../../format.js';
import { remoteFreeReclaim } from '../../model/allocators.js';
import type { Cause, Finding, Observation, ThreadInfo } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds, threadLabel, undecided } from '../detector.js';
import { describeMeasure, type HeapMeasure, measureHeap, measureSource } from '../measured.js';

export const id = 'sleeping-owner';
export const cause: Cause = 'allocator-retention';
/** Below this, waiting blocks are noise. */
export const MIN_UNRECLAIMED_BYTES = 8 * 1024 * 1024;
/** Unreclaimed bytes at least this share of RSS make it an error. */
export const ERROR_RSS_FRACTION = 0.25;

export function summary(t: ThreadInfo, bytes: number, idleMs: number): string {
  return `${formatBytes(bytes)} freed by other threads wait for thread ${threadLabel(t)}, idle for ${formatDuration(idleMs)}`;
}

export function message(o: Observation, t: ThreadInfo, bytes: number, modelled: number, m: HeapMeasure, idleMs: number): string {
  const started = t.start_routine ? `, started at ${t.start_routine}` : '';
  const howBack =
    remoteFreeReclaim(o.allocator.name, o.allocator.version) === 'next-call'
      ? 'mimalloc gives such blocks back to their pages only when the owner thread enters the allocator again'
      : `mimalloc ${o.allocator.version ?? '2.x'} gives such blocks back page by page, as the owner thread allocates from each page`;
  const bounded = bytes < modelled ? ` (the agent counted ${formatBytes(modelled)} waiting; the process holds only ${formatBytes(m.retained)} beyond its live data)` : '';
  return (
    `Thread ${threadLabel(t)}${started} allocated blocks that other threads freed (${formatBytes(t.heap?.remote_freed_bytes ?? 0)} so far); ` +
    `${howBack}, and this thread has been idle for ${formatDuration(idleMs)}, so ${formatBytes(bytes)} stay in RSS${bounded}. ` +
    `Measured: ${describeMeasure(m)}. This is allocator retention, not a leak.`
  );
}

export function remedy(t: ThreadInfo): string {
  return (
    `Have thread ${threadLabel(t)} enter the allocator now and then (mi_collect(false), or one small malloc/free on a timer), ` +
    `free its blocks on the thread that allocated them, or let it exit so its pages are abandoned and taken over by others.`
  );
}

/** What the agent's model says waits for `t`: exactly its unreclaimed bytes under 2.0; under 2.1+ at most all it saw freed remotely. */
function modelled(o: Observation, t: ThreadInfo): number {
  if (!t.heap) return 0;
  return remoteFreeReclaim(o.allocator.name, o.allocator.version) === 'next-call' ? (t.heap.unreclaimed_bytes ?? 0) : t.heap.remote_freed_bytes;
}

export function check(o: Observation, thresholds: Thresholds): CheckResult {
  if (remoteFreeReclaim(o.allocator.name, o.allocator.version) === 'none') return OK;
  if (o.agent.mode === 'proc') return undecided('needs the agent: remote frees are counted by its ledger');
  const owners = o.threads.filter(
    (t) => !t.agent_thread && t.heap && t.idle_ms !== null && t.idle_ms >= thresholds.idleMs && modelled(o, t) >= MIN_UNRECLAIMED_BYTES,
  );
  if (owners.length === 0) return OK;
  const m = measureHeap(o);
  if (!m) return undecided("live bytes are counted from attach only: what stays in RSS beyond them cannot be measured ('leakscope run')");
  // The measurement bounds the model: shared out in proportion when several owners sleep.
  const total = owners.reduce((sum, t) => sum + modelled(o, t), 0);
  const scale = Math.min(1, m.retained / total);
  const findings: Finding[] = [];
  for (const t of owners) {
    const model = modelled(o, t);
    const bytes = Math.round(model * scale);
    if (bytes < MIN_UNRECLAIMED_BYTES) continue;
    findings.push({
      id,
      severity: bytes >= ERROR_RSS_FRACTION * o.process.rss_bytes ? 'error' : 'warn',
      summary: summary(t, bytes, t.idle_ms as number),
      message: message(o, t, bytes, model, m, t.idle_ms as number),
      subject: { kind: 'thread', id: String(t.tid), label: threadLabel(t) },
      value: bytes,
      unit: 'bytes',
      remedy: remedy(t),
      measured: { bytes, source: `${measureSource(m)}, shared among ${owners.length} idle owner${owners.length === 1 ? '' : 's'}` },
      modelled_bytes: model,
    });
  }
  return found(findings);
}
