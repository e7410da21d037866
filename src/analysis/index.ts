// Runs every detector over an observation and returns the snapshot.
import type { Finding, Observation, PendingCheck, Severity, Snapshot } from '../model/snapshot.js';
import { DEFAULT_THRESHOLDS, type Detector, type Thresholds } from './detector.js';
import { verdictOf } from './verdict.js';
import * as arenaFragmentation from './findings/arena-fragmentation.js';
import * as heapGrowth from './findings/heap-growth.js';
import * as idleDirtyPages from './findings/idle-dirty-pages.js';
import * as idleForever from './findings/idle-forever.js';
import * as lostWaker from './findings/lost-waker.js';
import * as neverYielded from './findings/never-yielded.js';
import * as retention from './findings/retention.js';
import * as sleepingOwner from './findings/sleeping-owner.js';
import * as starvation from './findings/starvation.js';
import * as slabFragmentation from './findings/slab-fragmentation.js';
import * as taskGrowth from './findings/task-growth.js';
import * as threadGrowth from './findings/thread-growth.js';
import * as v8HeapGrowth from './findings/v8-heap-growth.js';

export const DETECTORS: readonly Detector[] = [
  taskGrowth,
  idleForever,
  lostWaker,
  neverYielded,
  starvation,
  heapGrowth,
  v8HeapGrowth,
  sleepingOwner,
  arenaFragmentation,
  slabFragmentation,
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
  return { ...observation, findings, pending_checks: pending, verdict: verdictOf(findings, pending, DETECTORS, observation.agent.mode === 'proc') };
}

