// What every detector in findings/ is: an id, named default thresholds, and
// a pure check over an observation and its history.
import type { Finding, Observation, Subject, ThreadInfo } from '../model/snapshot.js';
import type { VerdictSource } from './verdict.js';
import { threadName } from '../model/thread-order.js';

/** Threads, arenas (and tasks) idle at least this long count as asleep. */
export const DEFAULT_IDLE_THRESHOLD_MS = 30_000;

export interface Thresholds {
  readonly idleMs: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = { idleMs: DEFAULT_IDLE_THRESHOLD_MS };

export type CheckResult =
  | { readonly status: 'ok' }
  | { readonly status: 'undecided'; readonly reason: string }
  | { readonly status: 'found'; readonly findings: readonly Finding[] };

export interface Detector extends VerdictSource {
  check(observation: Observation, thresholds: Thresholds): CheckResult;
}

export const OK: CheckResult = { status: 'ok' };

export function undecided(reason: string): CheckResult {
  return { status: 'undecided', reason };
}

export function found(findings: readonly Finding[]): CheckResult {
  return findings.length === 0 ? OK : { status: 'found', findings };
}

export function threadLabel(t: Pick<ThreadInfo, 'tid' | 'name' | 'role'>): string {
  return `${threadName(t)} (tid ${t.tid})`;
}

/** The whole process, as the subject of a finding. */
export function processSubject(o: Observation): Subject {
  return { kind: 'process', id: String(o.pid), label: `pid ${o.pid}` };
}
