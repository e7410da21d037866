// idle-dirty-pages: jemalloc purges dirty pages as an arena is used, or
// from background threads when they are on (off by default). An arena
// nobody touches keeps its dirty pages: see jemalloc TUNING.md.
import { formatBytes, formatDuration } from '../../format.js';
import type { Arena, Cause, Finding, Observation } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds, undecided } from '../detector.js';
import { measureHeap } from '../measured.js';

export const id = 'idle-dirty-pages';
export const cause: Cause = 'allocator-retention';
/** Dirty bytes in one arena below this are not worth a finding. */
export const MIN_DIRTY_BYTES = 16 * 1024 * 1024;

export function summary(a: Arena, dirty: number, idleMs: number): string {
  return `${formatBytes(dirty)} of dirty pages sit in jemalloc arena ${a.index}, untouched for ${formatDuration(idleMs)}`;
}

export function message(a: Arena, dirty: number, idleMs: number): string {
  const threads = a.threads === null ? '' : ` (${a.threads} thread${a.threads === 1 ? '' : 's'} bound to it)`;
  return (
    `jemalloc arena ${a.index}${threads} holds ${formatBytes(dirty)} of dirty pages and has served no allocation for ${formatDuration(idleMs)}; ` +
    `with background threads off, jemalloc purges dirty pages only while an arena is in use, so these stay in RSS. ` +
    `This is allocator retention, not a leak.`
  );
}

export function remedy(pid: number): string {
  return (
    `Start the program with MALLOC_CONF=background_thread:true (or a shorter dirty_decay_ms) so idle arenas decay, ` +
    `or run 'leakscope reclaim ${pid}' to purge them now.`
  );
}

export function check(o: Observation, thresholds: Thresholds): CheckResult {
  if (o.allocator.name !== 'jemalloc') return OK;
  if (o.agent.mode === 'proc') return undecided('needs the agent: arena statistics come from mallctl inside the process');
  if (o.allocator.background_thread === true) return OK;
  const findings: Finding[] = [];
  // Dirty pages are resident until purged; what the process measurably holds
  // beyond live data bounds them (a page jemalloc counts may be swapped out).
  const m = measureHeap(o);
  let room = m ? m.retained : Infinity;
  const byDirty = [...o.allocator.arenas].sort((x, y) => (y.dirty_bytes ?? 0) - (x.dirty_bytes ?? 0));
  for (const a of byDirty) {
    const dirty = Math.min(a.dirty_bytes ?? 0, room);
    if (dirty < MIN_DIRTY_BYTES || a.idle_ms === null || a.idle_ms < thresholds.idleMs) continue;
    findings.push({
      id,
      severity: 'warn',
      summary: summary(a, dirty, a.idle_ms),
      message: message(a, dirty, a.idle_ms),
      subject: { kind: 'arena', id: String(a.index), label: `arena ${a.index}` },
      value: dirty,
      unit: 'bytes',
      remedy: remedy(o.pid),
      measured: { bytes: dirty, source: m ? "jemalloc's pdirty, at most RssAnon − live" : "jemalloc's pdirty" },
      modelled_bytes: null,
    });
    room -= dirty;
  }
  return found(findings);
}
