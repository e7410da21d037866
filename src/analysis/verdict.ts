// The one answer: is this a leak, allocator retention, or steady — from the
// findings, each detector naming the cause it speaks for. The same text is
// the report's first line, the console's header, `check`'s message and the
// JSON's `verdict`.
import type { Cause, Finding, PendingCheck, Severity, Verdict } from '../model/snapshot.js';

export interface VerdictSource {
  readonly id: string;
  /** The cause this detector's findings speak for; null when not about memory (never-yielded). */
  readonly cause: Cause | null;
  /** Findings below this severity do not decide the verdict (idle-forever's few idle tasks). */
  readonly verdictFrom?: Severity;
}

/** Which cause wins when findings disagree: leaked tasks usually hold the growing live data. */
export const CAUSE_ORDER: readonly Cause[] = ['tasks-leaking', 'live-data-growing', 'threads-leaking', 'allocator-retention', 'steady', 'unknown'];

export const CAUSE_LABEL: Readonly<Record<Cause, string>> = {
  'tasks-leaking': 'tasks leaking',
  'live-data-growing': 'live data growing',
  'threads-leaking': 'threads leaking',
  'allocator-retention': 'allocator retention, not a leak',
  steady: 'steady',
  unknown: 'unknown',
};

const RANK: Readonly<Record<Severity, number>> = { info: 0, warn: 1, error: 2 };

/**
 * `findings` in the order they are shown (errors first). `proc`: no agent,
 * so neither a leak nor steadiness can be told.
 */
export function verdictOf(
  findings: readonly Finding[],
  pending: readonly PendingCheck[],
  sources: readonly VerdictSource[],
  proc: boolean,
): Verdict {
  const byId = new Map(sources.map((s) => [s.id, s]));
  const causeOf = (f: Finding): Cause | null => {
    const source = byId.get(f.id);
    if (!source?.cause || RANK[f.severity] < RANK[source.verdictFrom ?? 'info']) return null;
    return source.cause;
  };
  const deciding = findings.filter((f) => causeOf(f) !== null);
  const cause: Cause = proc
    ? 'unknown'
    : (CAUSE_ORDER.find((c) => deciding.some((f) => causeOf(f) === c)) ?? 'steady');
  const because = [...new Set(deciding.filter((f) => causeOf(f) === cause).map((f) => f.id))];
  // What could still turn this verdict into a graver one.
  const rank = CAUSE_ORDER.indexOf(cause);
  const undecided = pending
    .filter((p) => {
      const c = byId.get(p.id)?.cause;
      return c !== null && c !== undefined && CAUSE_ORDER.indexOf(c) < rank;
    })
    .map((p) => p.id);
  const main = findings.find((f) => f.id === because[0]);
  const confidence = proc
    ? 'low'
    : because.length > 0
      ? deciding.some((f) => causeOf(f) === cause && f.severity === 'error') || because.length > 1
        ? 'high'
        : 'medium'
      : undecided.length > 0
        ? 'low'
        : 'high';
  return { cause, confidence, because, undecided, summary: summaryOf(cause, main, undecided, pending) };
}

function summaryOf(cause: Cause, main: Finding | undefined, undecided: readonly string[], pending: readonly PendingCheck[]): string {
  if (cause === 'unknown') return 'unknown: no agent, and /proc alone cannot tell a leak';
  if (main) return `${CAUSE_LABEL[cause]} — ${main.summary}`;
  if (undecided.length === 0) return 'steady: no leak and no retention found';
  const reason = pending.find((p) => p.id === undecided[0])?.reason;
  return `steady so far: ${undecided.join(', ')} not decided yet${reason ? ` (${reason})` : ''}`;
}
