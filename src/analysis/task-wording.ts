// How tasks of each kind are named in findings: "promises created at",
// "tasks spawned at". Kinds come from the runtime (the ABI's `kind`).
import { formatCount } from '../format.js';
import type { Subject, TaskSite } from '../model/snapshot.js';

const CREATED_KINDS = new Set(['promise', 'span', 'timer', 'interval', 'handle']);

/** "task" or "tasks", "promise" or "promises". */
export function nounOf(kind: string, count: number): string {
  const noun = kind === '' ? 'task' : kind;
  return count === 1 ? noun : `${noun}${noun.endsWith('s') ? 'es' : 's'}`;
}

/** "1 task", "3,000 promises". */
export function countOf(kind: string, count: number): string {
  return `${formatCount(count)} ${nounOf(kind, count)}`;
}

/** Whether the runtime polls tasks of this kind: a promise, timer or span is never "polled" until it ends. */
export function isPolled(kind: string): boolean {
  return !CREATED_KINDS.has(kind);
}

/** "spawned at" for tasks, "created at" for promises, timers and spans. */
export function origin(kind: string): string {
  return CREATED_KINDS.has(kind) ? 'created at' : 'spawned at';
}

/** "idle" for tasks, "pending" for promises and timers, "open" for spans. */
export function waiting(kind: string): string {
  if (kind === 'promise' || kind === 'timer') return 'pending';
  return kind === 'span' ? 'open' : 'idle';
}

/** What has not happened to an idle one: "been polled or woken", "settled", "ended", "fired". */
export function notYet(kind: string): string {
  if (kind === 'promise') return 'settled';
  if (kind === 'span') return 'ended';
  if (kind === 'timer') return 'fired';
  return 'been polled or woken';
}

/** What would end one: "wake", "settle", "end", "fire". */
export function ender(kind: string): string {
  if (kind === 'promise') return 'settle';
  if (kind === 'span') return 'end';
  if (kind === 'timer') return 'fire';
  return 'wake';
}

export function siteSubject(site: Pick<TaskSite, 'kind' | 'site'>): Subject {
  return { kind: 'site', id: `${site.kind}@${site.site}`, label: site.site };
}
