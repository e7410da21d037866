// What the sleeping-owner fixtures (C and Rust) print, and how their tests
// read findings.
import type { Snapshot } from '../../src/model/snapshot.js';

export interface OwnerTruth {
  pid: number;
  owner_tid: number;
  remote_freed_bytes: number;
}

/** A short idle threshold, so that the owner is judged within seconds. */
export const IDLE = ['--idle-threshold', '2s'];

export const findingIds = (s: Snapshot): string[] => s.findings.map((f) => f.id);
