// leakscope check: a gate for CI and scripts. Exit 0 when nothing at or
// above the chosen severity was found, 1 when something was, 2 when the
// check could not be made.
import { analyze } from '../../analysis/index.js';
import type { Thresholds } from '../../analysis/detector.js';
import { LeakscopeError } from '../../errors.js';
import { observationOf, readRecording } from '../../model/recording.js';
import type { Severity, Snapshot } from '../../model/snapshot.js';
import { takeSnapshot } from './snapshot.js';

export const EXIT_CLEAN = 0;
export const EXIT_FOUND = 1;
export const EXIT_UNCHECKED = 2;

export type FailOn = Exclude<Severity, 'info'>;

export function parseFailOn(text: string): FailOn {
  if (text === 'warn' || text === 'error') return text;
  throw new LeakscopeError(`--fail-on takes warn or error, not '${text}'`);
}

const RANK: Readonly<Record<Severity, number>> = { info: 0, warn: 1, error: 2 };

export interface CheckOptions {
  readonly failOn: FailOn;
  readonly json: boolean;
  readonly thresholds: Thresholds;
}

async function snapshotFor(target: string, thresholds: Thresholds): Promise<Snapshot> {
  if (/^\d+$/.test(target)) return takeSnapshot(target, thresholds);
  const recording = await readRecording(target);
  const last = recording.snapshots.at(-1) as Snapshot;
  return analyze(observationOf(last), thresholds);
}

export async function checkCommand(target: string, options: CheckOptions): Promise<number> {
  let snapshot: Snapshot;
  try {
    snapshot = await snapshotFor(target, options.thresholds);
  } catch (error) {
    throw new LeakscopeError(`could not check: ${(error as Error).message ?? String(error)}`, EXIT_UNCHECKED);
  }
  if (snapshot.agent.mode === 'proc')
    throw new LeakscopeError(
      `could not check pid ${snapshot.pid}: it has no leakscope agent, and /proc alone cannot tell a leak (start it with 'leakscope run')`,
      EXIT_UNCHECKED,
    );
  const failing = snapshot.findings.filter((f) => RANK[f.severity] >= RANK[options.failOn]);
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          pid: snapshot.pid,
          fail_on: options.failOn,
          passed: failing.length === 0,
          verdict: snapshot.verdict,
          findings: snapshot.findings,
          pending_checks: snapshot.pending_checks,
        },
        null,
        2,
      )}\n`,
    );
  } else {
    process.stdout.write(`verdict: ${snapshot.verdict.summary}\n`);
    for (const f of snapshot.findings) process.stdout.write(`${f.severity.toUpperCase()} ${f.id}: ${f.summary}\n`);
    for (const p of snapshot.pending_checks) process.stdout.write(`UNDECIDED ${p.id}: ${p.reason}\n`);
    process.stdout.write(
      failing.length === 0
        ? `ok: nothing at or above ${options.failOn} in pid ${snapshot.pid}\n`
        : `failed: ${failing.length} finding${failing.length === 1 ? '' : 's'} at or above ${options.failOn} in pid ${snapshot.pid}\n`,
    );
  }
  return failing.length === 0 ? EXIT_CLEAN : EXIT_FOUND;
}
