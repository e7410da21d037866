// What grew between two snapshots of one process: spawn sites, threads,
// arenas, and the findings that appeared or went away. Pure.
import type { Finding, Snapshot, TaskSite, ThreadInfo } from '../model/snapshot.js';
import { stackKey } from '../model/stacks.js';
import { threadName } from '../model/thread-order.js';

export interface Change {
  readonly from: number;
  readonly to: number;
  readonly delta: number;
}

function change(from: number, to: number): Change {
  return { from, to, delta: to - from };
}

export interface SiteDiff {
  readonly site: string;
  readonly kind: string;
  readonly live: Change;
  readonly idle_over_threshold: Change;
  readonly spawned: Change;
  readonly completed: Change;
  readonly allocated_bytes: Change;
  readonly live_bytes: Change;
}

export interface ThreadDiff {
  readonly tid: number;
  readonly name: string;
  readonly live_bytes: Change;
  readonly unreclaimed_bytes: Change;
  readonly allocated_bytes: Change;
}

export interface ArenaDiff {
  readonly index: number;
  readonly mapped_bytes: Change;
  readonly free_bytes: Change;
  readonly dirty_bytes: Change | null;
}

export interface SnapshotDiff {
  readonly pid: number;
  readonly same_process: boolean;
  readonly from_taken_at: string;
  readonly to_taken_at: string;
  readonly elapsed_ms: number;
  readonly rss_bytes: Change;
  readonly live_bytes: Change | null;
  readonly threads: Change;
  readonly tasks_live: Change;
  /** Sites whose live count, live bytes or idle count changed, most grown first. */
  readonly sites: readonly SiteDiff[];
  readonly new_threads: readonly { readonly start_routine: string; readonly count: number }[];
  readonly gone_threads: number;
  /** Threads in both snapshots whose heap changed, most grown first. */
  readonly grown_threads: readonly ThreadDiff[];
  readonly arenas: readonly ArenaDiff[];
  /** Allocation stacks whose live bytes changed, most grown first (matched by their named frames). */
  readonly stacks: readonly StackDiff[];
  readonly new_findings: readonly Finding[];
  readonly resolved_findings: readonly Finding[];
}

function siteKey(s: Pick<TaskSite, 'kind' | 'site'>): string {
  return `${s.kind}\u001f${s.site}`;
}

function findingKey(f: Finding): string {
  return `${f.id}\u001f${f.subject.kind}\u001f${f.subject.id}`;
}

const EMPTY_SITE = { live: 0, idle_over_threshold: 0, spawned: 0, completed: 0, allocated_bytes: 0, live_bytes: 0 };

function diffSites(a: Snapshot, b: Snapshot): SiteDiff[] {
  const before = new Map(a.tasks.sites.map((s) => [siteKey(s), s]));
  const after = new Map(b.tasks.sites.map((s) => [siteKey(s), s]));
  const keys = new Set([...before.keys(), ...after.keys()]);
  const diffs: SiteDiff[] = [];
  for (const key of keys) {
    const x = before.get(key);
    const y = after.get(key);
    const named = (y ?? x) as TaskSite;
    const p = x ?? EMPTY_SITE;
    const q = y ?? EMPTY_SITE;
    const d: SiteDiff = {
      site: named.site,
      kind: named.kind,
      live: change(p.live, q.live),
      idle_over_threshold: change(p.idle_over_threshold, q.idle_over_threshold),
      spawned: change(p.spawned, q.spawned),
      completed: change(p.completed, q.completed),
      allocated_bytes: change(p.allocated_bytes, q.allocated_bytes),
      live_bytes: change(p.live_bytes, q.live_bytes),
    };
    if (d.live.delta !== 0 || d.live_bytes.delta !== 0 || d.idle_over_threshold.delta !== 0) diffs.push(d);
  }
  return diffs.sort((m, n) => n.live.delta - m.live.delta || n.live_bytes.delta - m.live_bytes.delta || m.site.localeCompare(n.site));
}

function heapOf(t: ThreadInfo | undefined): { live: number; unreclaimed: number; allocated: number } {
  return { live: t?.heap?.live_bytes ?? 0, unreclaimed: t?.heap?.unreclaimed_bytes ?? 0, allocated: t?.heap?.allocated_bytes ?? 0 };
}

function diffThreads(a: Snapshot, b: Snapshot): Pick<SnapshotDiff, 'new_threads' | 'gone_threads' | 'grown_threads'> {
  const before = new Map(a.threads.map((t) => [t.tid, t]));
  const after = new Map(b.threads.map((t) => [t.tid, t]));
  const routines = new Map<string, number>();
  const grown: ThreadDiff[] = [];
  for (const [tid, t] of after) {
    const old = before.get(tid);
    if (!old) {
      const routine = t.start_routine ?? t.name;
      routines.set(routine, (routines.get(routine) ?? 0) + 1);
      continue;
    }
    const x = heapOf(old);
    const y = heapOf(t);
    const d: ThreadDiff = {
      tid,
      name: threadName(t),
      live_bytes: change(x.live, y.live),
      unreclaimed_bytes: change(x.unreclaimed, y.unreclaimed),
      allocated_bytes: change(x.allocated, y.allocated),
    };
    if (d.live_bytes.delta !== 0 || d.unreclaimed_bytes.delta !== 0) grown.push(d);
  }
  grown.sort((m, n) => n.live_bytes.delta + n.unreclaimed_bytes.delta - (m.live_bytes.delta + m.unreclaimed_bytes.delta) || m.tid - n.tid);
  return {
    new_threads: [...routines].map(([start_routine, count]) => ({ start_routine, count })).sort((m, n) => n.count - m.count),
    gone_threads: [...before.keys()].filter((tid) => !after.has(tid)).length,
    grown_threads: grown,
  };
}

function diffArenas(a: Snapshot, b: Snapshot): ArenaDiff[] {
  const before = new Map(a.allocator.arenas.map((x) => [x.index, x]));
  const diffs: ArenaDiff[] = [];
  for (const y of b.allocator.arenas) {
    const x = before.get(y.index);
    const d: ArenaDiff = {
      index: y.index,
      mapped_bytes: change(x?.mapped_bytes ?? 0, y.mapped_bytes),
      free_bytes: change(x?.free_bytes ?? 0, y.free_bytes),
      dirty_bytes: y.dirty_bytes === null ? null : change(x?.dirty_bytes ?? 0, y.dirty_bytes),
    };
    if (d.mapped_bytes.delta !== 0 || d.free_bytes.delta !== 0) diffs.push(d);
  }
  return diffs.sort((m, n) => n.mapped_bytes.delta - m.mapped_bytes.delta || m.index - n.index);
}

export interface StackDiff {
  readonly site: string;
  /** The stack's id in the later snapshot (or the earlier one, if it is gone). */
  readonly id: string;
  readonly live_bytes: Change;
  /** Bytes allocated between the two (null for JavaScript, whose profile keeps live objects only). */
  readonly allocated_bytes: number | null;
}

/** Live bytes per allocation stack, from one snapshot to the other. */
export function diffStacks(a: Snapshot, b: Snapshot): StackDiff[] {
  const before = new Map((a.heap?.stacks ?? []).map((s) => [stackKey(s), s]));
  const after = new Map((b.heap?.stacks ?? []).map((s) => [stackKey(s), s]));
  const keys = new Set([...before.keys(), ...after.keys()]);
  const diffs: StackDiff[] = [];
  for (const key of keys) {
    const x = before.get(key);
    const y = after.get(key);
    const live = change(x?.live_bytes ?? 0, y?.live_bytes ?? 0);
    if (live.delta === 0) continue;
    const allocated = x?.allocated_bytes != null || y?.allocated_bytes != null ? (y?.allocated_bytes ?? 0) - (x?.allocated_bytes ?? 0) : null;
    diffs.push({ site: (y ?? x)!.site, id: (y ?? x)!.id, live_bytes: live, allocated_bytes: allocated });
  }
  return diffs.sort((p, q) => q.live_bytes.delta - p.live_bytes.delta);
}

export function diffSnapshots(a: Snapshot, b: Snapshot): SnapshotDiff {
  const beforeFindings = new Set(a.findings.map(findingKey));
  const afterFindings = new Set(b.findings.map(findingKey));
  return {
    pid: b.pid,
    same_process: a.pid === b.pid && a.command === b.command,
    from_taken_at: a.taken_at,
    to_taken_at: b.taken_at,
    elapsed_ms: Date.parse(b.taken_at) - Date.parse(a.taken_at),
    rss_bytes: change(a.process.rss_bytes, b.process.rss_bytes),
    live_bytes:
      a.allocator.live_bytes === null || b.allocator.live_bytes === null ? null : change(a.allocator.live_bytes, b.allocator.live_bytes),
    threads: change(a.process.threads, b.process.threads),
    tasks_live: change(a.tasks.live, b.tasks.live),
    sites: diffSites(a, b),
    ...diffThreads(a, b),
    arenas: diffArenas(a, b),
    stacks: diffStacks(a, b),
    new_findings: b.findings.filter((f) => !beforeFindings.has(findingKey(f))),
    resolved_findings: a.findings.filter((f) => !afterFindings.has(findingKey(f))),
  };
}
