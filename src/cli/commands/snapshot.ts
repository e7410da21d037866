// leakscope snapshot: one snapshot, as JSON or a short report.
import { promises as fs } from 'node:fs';
import { analyze } from '../../analysis/index.js';
import type { Thresholds } from '../../analysis/detector.js';
import { observe, withConnection } from '../../conn/attach.js';
import { parsePid } from '../../conn/target.js';
import { LeakscopeError } from '../../errors.js';
import type { Snapshot } from '../../model/snapshot.js';
import { renderReport } from '../report.js';

export interface SnapshotOptions {
  readonly json: boolean;
  readonly out?: string;
  readonly thresholds: Thresholds;
}

export async function takeSnapshot(pidText: string, thresholds: Thresholds): Promise<Snapshot> {
  const pid = parsePid(pidText);
  const observation = await withConnection(pid, observe);
  return analyze(observation, thresholds);
}

export async function snapshotCommand(pidText: string, options: SnapshotOptions): Promise<number> {
  const snapshot = await takeSnapshot(pidText, options.thresholds);
  const json = `${JSON.stringify(snapshot, null, 2)}\n`;
  if (options.out) {
    try {
      await fs.writeFile(options.out, json);
    } catch (error) {
      throw new LeakscopeError(`cannot write ${options.out}: ${(error as Error).message}`);
    }
  }
  if (options.json && !options.out) process.stdout.write(json);
  if (!options.json) process.stdout.write(renderReport(snapshot));
  return 0;
}
