// How long a process that keeps growing has before its cgroup's memory limit
// (where the OOM killer acts), at the rate a growth finding measured. The
// limit is judged against the cgroup's working set, as the kubelet does:
// usage less the page cache reclaim can easily take back.
import { formatBytes, formatTimeLeft } from '../format.js';
import type { ProcessInfo } from '../model/snapshot.js';

export interface LimitReach {
  readonly limitBytes: number;
  /** What the working set may still grow by; 0 when it is at the limit. */
  readonly headroomBytes: number;
  /** At the rate given; 0 when at the limit already. */
  readonly seconds: number;
  /** Where the limit is set, when known. */
  readonly limitPath: string | null;
}

/** null when there is no limit, or nothing grows. */
export function limitReach(process: ProcessInfo, ratePerS: number): LimitReach | null {
  const cgroup = process.cgroup;
  if (!cgroup || cgroup.limit_bytes === null || !(ratePerS > 0)) return null;
  const headroomBytes = Math.max(0, cgroup.limit_bytes - cgroup.working_set_bytes);
  return { limitBytes: cgroup.limit_bytes, headroomBytes, seconds: headroomBytes / ratePerS, limitPath: cgroup.limit_path };
}

/** A sentence to add to a growth finding's message; empty when there is no limit. */
export function limitSentence(process: ProcessInfo, ratePerS: number): string {
  const reach = limitReach(process, ratePerS);
  if (!reach) return '';
  const limit = `the ${formatBytes(reach.limitBytes)} memory limit${reach.limitPath ? ` of cgroup ${reach.limitPath}` : ''}`;
  if (reach.headroomBytes === 0) return ` Its cgroup's working set is at ${limit}: the OOM killer may act at any moment.`;
  return ` At ${formatBytes(ratePerS)}/s, ${limit} is reached in about ${formatTimeLeft(reach.seconds * 1000)} (${formatBytes(reach.headroomBytes)} of headroom).`;
}
