// Runs every detector over an observation and returns the snapshot.
import type { Finding, Observation, PendingCheck, Severity, Snapshot } from '../model/snapshot.js';
import { DEFAULT_THRESHOLDS, type Detector, type Thresholds } from './detector.js';
import * as arenaFragmentation from './findings/arena-fragmentation.js';
import * as heapGrowth from './findings/heap-growth.js';
import * as idleDirtyPages from './findings/idle-dirty-pages.js';
import * as idleForever from './findings/idle-forever.js';
import * as lostWaker from './findings/lost-waker.js';
import * as neverYielded from './findings/never-yielded.js';
import * as retention from './findings/retention.js';
import * as sleepingOwner from './findings/sleeping-owner.js';
import * as taskGrowth from './findings/task-growth.js';
import * as threadGrowth from './findings/thread-growth.js';

export const DETECTORS: readonly Detector[] = [
  taskGrowth,
  idleForever,
  lostWaker,
  neverYielded,
  heapGrowth,
  sleepingOwner,
  arenaFragmentation,
  idleDirtyPages,
  threadGrowth,
  retention,
];

const SEVERITY_ORDER: Readonly<Record<Severity, number>> = { error: 0, warn: 1, info: 2 };

export function analyze(observation: Observation, thresholds: Thresholds = DEFAULT_THRESHOLDS): Snapshot {
  const findings: Finding[] = [];
  const pending: PendingCheck[] = [];
  for (const detector of DETECTORS) {
    const result = detector.check(observation, thresholds);
    if (result.status === 'found') findings.push(...result.findings);
    else if (result.status === 'undecided') pending.push({ id: detector.id, reason: result.reason });
  }
  findings.sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || b.value - a.value);
  return { ...observation, findings, pending_checks: pending };
}

export type Verdict = 'tasks leaking' | 'live data growing' | 'threads leaking' | 'allocator retention' | 'steady' | 'unknown';

const RETENTION_IDS = new Set([sleepingOwner.id, arenaFragmentation.id, idleDirtyPages.id, retention.id]);

/** One line for a person: which of the causes this looks like. */
export function verdict(snapshot: Snapshot): Verdict {
  const ids = new Set(snapshot.findings.map((f) => f.id));
  // Leaked tasks usually hold the growing live data: name the cause.
  const tasksLeak = snapshot.findings.some(
    (f) => f.id === taskGrowth.id || f.id === lostWaker.id || (f.id === idleForever.id && f.severity !== 'info'),
  );
  if (tasksLeak) return 'tasks leaking';
  if (ids.has(heapGrowth.id)) return 'live data growing';
  if (ids.has(threadGrowth.id)) return 'threads leaking';
  if ([...ids].some((id) => RETENTION_IDS.has(id))) return 'allocator retention';
  if (snapshot.agent.mode === 'proc') return 'unknown';
  return 'steady';
}
