// Snapshot files and watch recordings on disk: one snapshot document
// (`leakscope snapshot --out`) or JSON lines from `leakscope watch`, whose
// lines are watch events (leakscope.watch/1) and snapshots.
import { promises as fs } from 'node:fs';
import { LeakscopeError } from '../errors.js';
import { type Observation, SNAPSHOT_SCHEMA, type Snapshot } from './snapshot.js';

export const WATCH_SCHEMA = 'leakscope.watch/1';

export type WatchEvent =
  | { readonly schema: typeof WATCH_SCHEMA; readonly event: 'start'; readonly pid: number; readonly interval_ms: number; readonly at: string }
  | {
      readonly schema: typeof WATCH_SCHEMA;
      readonly event: 'end';
      readonly pid: number;
      readonly at: string;
      readonly reason: 'target exited' | 'count reached' | 'interrupted' | 'agent lost';
      readonly detail: string;
      readonly snapshots: number;
    };

export interface Recording {
  readonly path: string;
  readonly snapshots: readonly Snapshot[];
  readonly events: readonly WatchEvent[];
}

function isSnapshot(value: unknown): value is Snapshot {
  const v = value as Partial<Snapshot> | null;
  return !!v && v.schema === SNAPSHOT_SCHEMA && typeof v.pid === 'number' && Array.isArray(v.threads) && !!v.tasks;
}

function isWatchEvent(value: unknown): value is WatchEvent {
  return !!value && (value as { schema?: unknown }).schema === WATCH_SCHEMA;
}

/** Parses a snapshot document or a watch recording. */
export function parseRecording(text: string, path: string): Recording {
  const trimmed = text.trim();
  if (trimmed === '') throw new LeakscopeError(`${path} is empty`);
  // One document (possibly pretty-printed) or one object per line.
  try {
    const whole: unknown = JSON.parse(trimmed);
    if (isSnapshot(whole)) return { path, snapshots: [whole], events: [] };
    if (!isWatchEvent(whole)) throw new LeakscopeError(`${path} is JSON but not a leakscope snapshot (schema ${SNAPSHOT_SCHEMA})`);
  } catch (error) {
    if (error instanceof LeakscopeError) throw error;
  }
  const snapshots: Snapshot[] = [];
  const events: WatchEvent[] = [];
  const lines = trimmed.split('\n');
  lines.forEach((line, index) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      // A recording cut off mid-line (the machine went down) keeps what it has.
      if (index === lines.length - 1 && snapshots.length > 0) return;
      throw new LeakscopeError(`${path}:${index + 1} is not JSON: not a snapshot file or a watch recording`);
    }
    if (isSnapshot(value)) snapshots.push(value);
    else if (isWatchEvent(value)) events.push(value);
    else throw new LeakscopeError(`${path}:${index + 1} is neither a leakscope snapshot nor a watch event`);
  });
  if (snapshots.length === 0) throw new LeakscopeError(`${path} holds no snapshot`);
  return { path, snapshots, events };
}

export async function readRecording(path: string): Promise<Recording> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LeakscopeError(`no such file: ${path}`);
    throw new LeakscopeError(`cannot read ${path}: ${(error as Error).message}`);
  }
  return parseRecording(text, path);
}

/** A recorded snapshot without its findings, to analyse again. */
export function observationOf(snapshot: Snapshot): Observation {
  const { findings: _findings, pending_checks: _pending, ...observation } = snapshot;
  return observation;
}
