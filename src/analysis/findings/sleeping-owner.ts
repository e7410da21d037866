// sleeping-owner: under mimalloc, a block freed by another thread waits on
// its page's thread-free list until the page's owner thread next runs in
// the allocator (mimalloc docs, "Performance": delayed free). An owner that
// sleeps keeps all of it. Only mimalloc has this trap: quiet elsewhere.
import { formatBytes, formatDuration } from '../../format.js';
import type { Cause, Finding, Observation, ThreadInfo } from '../../model/snapshot.js';
import { type CheckResult, found, OK, type Thresholds, threadLabel, undecided } from '../detector.js';

export const id = 'sleeping-owner';
export const cause: Cause = 'allocator-retention';
/** Below this, waiting blocks are noise. */
export const MIN_UNRECLAIMED_BYTES = 8 * 1024 * 1024;
/** Unreclaimed bytes at least this share of RSS make it an error. */
export const ERROR_RSS_FRACTION = 0.25;

export function summary(t: ThreadInfo, unreclaimed: number, idleMs: number): string {
  return `${formatBytes(unreclaimed)} freed by other threads wait for thread ${threadLabel(t)}, idle for ${formatDuration(idleMs)}`;
}

export function message(t: ThreadInfo, unreclaimed: number, remote: number, idleMs: number): string {
  const started = t.start_routine ? `, started at ${t.start_routine}` : '';
  return (
    `Thread ${threadLabel(t)}${started} allocated blocks that other threads freed (${formatBytes(remote)} so far); ` +
    `mimalloc gives such blocks back to their pages only when the owner thread enters the allocator again, ` +
    `and this thread has been idle for ${formatDuration(idleMs)}, so ${formatBytes(unreclaimed)} stay in RSS. ` +
    `This is allocator retention, not a leak.`
  );
}

export function remedy(t: ThreadInfo): string {
  return (
    `Have thread ${threadLabel(t)} enter the allocator now and then (mi_collect(false), or one small malloc/free on a timer), ` +
    `free its blocks on the thread that allocated them, or let it exit so its pages are abandoned and taken over by others.`
  );
}

export function check(o: Observation, thresholds: Thresholds): CheckResult {
  if (o.allocator.name !== 'mimalloc') return OK;
  if (o.agent.mode === 'proc') return undecided('needs the agent: remote frees are counted by its ledger');
  const findings: Finding[] = [];
  for (const t of o.threads) {
    const unreclaimed = t.heap?.unreclaimed_bytes ?? 0;
    if (t.agent_thread || !t.heap || unreclaimed < MIN_UNRECLAIMED_BYTES) continue;
    if (t.idle_ms === null || t.idle_ms < thresholds.idleMs) continue;
    findings.push({
      id,
      severity: unreclaimed >= ERROR_RSS_FRACTION * o.process.rss_bytes ? 'error' : 'warn',
      summary: summary(t, unreclaimed, t.idle_ms),
      message: message(t, unreclaimed, t.heap.remote_freed_bytes, t.idle_ms),
      subject: { kind: 'thread', id: String(t.tid), label: threadLabel(t) },
      value: unreclaimed,
      unit: 'bytes',
      remedy: remedy(t),
    });
  }
  return found(findings);
}
