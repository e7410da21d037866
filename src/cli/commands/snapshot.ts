// leakscope snapshot: one snapshot, as JSON or a short report.
import { promises as fs } from 'node:fs';
import { analyze } from '../../analysis/index.js';
import type { Thresholds } from '../../analysis/detector.js';
import { observe, type TaskQuery, withConnection } from '../../conn/attach.js';
import { parsePid, whileAlive } from '../../conn/target.js';
import { LeakscopeError } from '../../errors.js';
import type { Snapshot } from '../../model/snapshot.js';
import { renderReport } from '../report.js';

export interface SnapshotOptions {
  readonly json: boolean;
  readonly out?: string;
  readonly thresholds: Thresholds;
  readonly tasks: TaskQuery;
}

export async function takeSnapshot(pidText: string, thresholds: Thresholds, tasks: TaskQuery = {}): Promise<Snapshot> {
  const pid = parsePid(pidText);
  const observation = await whileAlive(pid, 'taking its snapshot', withConnection(pid, (c) => observe(c, { ...tasks, idleThresholdMs: thresholds.idleMs })));
  return analyze(observation, thresholds);
}

export async function writeFileOrFail(path: string, text: string | Uint8Array): Promise<void> {
  try {
    await fs.writeFile(path, text);
  } catch (error) {
    throw new LeakscopeError(`cannot write ${path}: ${(error as Error).message}`);
  }
}

export async function snapshotCommand(pidText: string, options: SnapshotOptions): Promise<number> {
  const snapshot = await takeSnapshot(pidText, options.thresholds, options.tasks);
  const json = `${JSON.stringify(snapshot, null, 2)}\n`;
  if (options.out) await writeFileOrFail(options.out, json);
  if (options.json && !options.out) process.stdout.write(json);
  if (!options.json) process.stdout.write(renderReport(snapshot));
  return 0;
}
