// The order threads are shown in, and the name they are shown by, in report
// and console alike: the process's own before the agent's, the biggest
// holders of memory first.
import type { ThreadInfo } from './snapshot.js';

/** Its role where the runtime's threads are all named alike (Node: "node"), else its own name. */
export function threadName(t: Pick<ThreadInfo, 'name' | 'role'>): string {
  return t.role ?? t.name;
}

export function orderThreads(threads: readonly ThreadInfo[]): ThreadInfo[] {
  return [...threads].sort(
    (a, b) =>
      Number(a.agent_thread) - Number(b.agent_thread) ||
      (b.heap?.unreclaimed_bytes ?? 0) - (a.heap?.unreclaimed_bytes ?? 0) ||
      (b.heap?.live_bytes ?? 0) - (a.heap?.live_bytes ?? 0) ||
      a.tid - b.tid,
  );
}
