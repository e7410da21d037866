// What `leakscope export` publishes, declared once: each metric's name, unit,
// kind and how its points are read off a target's latest analysed snapshot.
// OpenTelemetry's semantic conventions where they have a name (process.*,
// v8js.*), leakscope.* for the rest. Pure: no SDK, no sockets.
import type { Snapshot } from '../model/snapshot.js';
import { limitReach } from '../analysis/limit.js';
import { DETECTORS } from '../analysis/index.js';

export type Attributes = Readonly<Record<string, string | number>>;

export interface Point {
  readonly value: number;
  readonly attributes?: Attributes;
}

/** gauge: a value now; updown: a sum that goes both ways (semconv's UpDownCounter); counter: a sum that only rises since the process started. */
export type MetricKind = 'gauge' | 'updown' | 'counter';

export interface MetricSpec {
  readonly name: string;
  readonly unit: string;
  readonly description: string;
  readonly kind: MetricKind;
  readonly integer: boolean;
  /** Points from a target's latest snapshot (attributes beside the target's own). */
  points(snapshot: Snapshot): readonly Point[];
}

/** Sites (and owner threads) per target beyond which the rest is summed into one `other` series, so cardinality stays bounded. */
export const TOP_SITES = 10;
export const TOP_OWNER_THREADS = 5;
export const OTHER = 'other';

/** Where retained memory sits, by the finding that measured it. */
export const RETENTION_CAUSES = ['sleeping-owner', 'fragmentation', 'dirty-pages', 'unattributed'] as const;
const RETENTION_OF: Readonly<Record<string, (typeof RETENTION_CAUSES)[number]>> = {
  'sleeping-owner': 'sleeping-owner',
  'arena-fragmentation': 'fragmentation',
  'slab-fragmentation': 'fragmentation',
  'idle-dirty-pages': 'dirty-pages',
};

export const VERDICT_CAUSES = ['tasks-leaking', 'live-data-growing', 'threads-leaking', 'allocator-retention', 'steady', 'unknown'] as const;

export function retainedByCause(s: Snapshot): Record<(typeof RETENTION_CAUSES)[number], number> {
  const retained = { 'sleeping-owner': 0, fragmentation: 0, 'dirty-pages': 0, unattributed: 0 };
  for (const finding of s.findings) {
    const cause = RETENTION_OF[finding.id];
    if (cause && finding.unit === 'bytes') retained[cause] += finding.value;
  }
  // The general finding measures it all; what the specific ones did not place stays unattributed.
  const measured = s.findings.find((f) => f.id === 'retention' && f.unit === 'bytes')?.value ?? 0;
  const placed = retained['sleeping-owner'] + retained.fragmentation + retained['dirty-pages'];
  retained.unattributed = Math.max(0, measured - placed);
  return retained;
}

/** The fastest memory growth a finding measured (bytes per second), if any. */
export function growthRate(s: Snapshot): number | null {
  const rates = s.findings.filter((f) => f.unit === 'bytes_per_s').map((f) => f.value);
  return rates.length ? Math.max(...rates) : null;
}

/** Sites by live tasks, the first `TOP_SITES` by name and the rest as `other`. */
function topSites(s: Snapshot, pick: (site: Snapshot['tasks']['sites'][number]) => number): Point[] {
  const sites = [...s.tasks.sites].sort((a, b) => b.live - a.live || a.site.localeCompare(b.site));
  const points: Point[] = sites.slice(0, TOP_SITES).map((site) => ({
    value: pick(site),
    attributes: { 'leakscope.task.site': site.site, 'leakscope.task.kind': site.kind },
  }));
  const rest = sites.slice(TOP_SITES);
  if (rest.length) points.push({ value: rest.reduce((sum, site) => sum + pick(site), 0), attributes: { 'leakscope.task.site': OTHER, 'leakscope.task.kind': OTHER } });
  return points;
}

export const METRICS: readonly MetricSpec[] = [
  {
    name: 'process.memory.usage',
    unit: 'By',
    description: 'The amount of physical memory in use (RSS).',
    kind: 'updown',
    integer: true,
    points: (s) => [{ value: s.process.rss_bytes }],
  },
  {
    name: 'process.memory.virtual',
    unit: 'By',
    description: 'The amount of committed virtual memory (VmSize).',
    kind: 'updown',
    integer: true,
    points: (s) => (s.process.memory?.virtual_bytes === undefined ? [] : [{ value: s.process.memory.virtual_bytes }]),
  },
  {
    name: 'process.thread.count',
    unit: '{thread}',
    description: 'Process threads count.',
    kind: 'updown',
    integer: true,
    points: (s) => [{ value: s.process.threads }],
  },
  {
    name: 'v8js.memory.heap.used',
    unit: 'By',
    description: 'Heap memory used by V8, per heap space.',
    kind: 'gauge',
    integer: true,
    points: (s) => {
      const last = s.node?.v8_heap_history?.at(-1);
      const names = s.node?.v8_heap_spaces;
      if (!last || !names) return [];
      return names.map((name, i) => ({ value: last.spaces[i] ?? 0, attributes: { 'v8js.heap.space.name': name } }));
    },
  },
  {
    name: 'leakscope.heap.live',
    unit: 'By',
    description: "Bytes allocated and not freed, by the agent's ledger.",
    kind: 'updown',
    integer: true,
    points: (s) => (s.allocator.live_bytes === null ? [] : [{ value: s.allocator.live_bytes }]),
  },
  {
    name: 'leakscope.heap.allocated',
    unit: 'By',
    description: 'Bytes allocated since the agent started counting.',
    kind: 'counter',
    integer: true,
    points: (s) => (s.allocator.allocated_bytes === null ? [] : [{ value: s.allocator.allocated_bytes }]),
  },
  {
    name: 'leakscope.heap.freed',
    unit: 'By',
    description: 'Bytes freed since the agent started counting.',
    kind: 'counter',
    integer: true,
    points: (s) => (s.allocator.freed_bytes === null ? [] : [{ value: s.allocator.freed_bytes }]),
  },
  {
    name: 'leakscope.memory.retained',
    unit: 'By',
    description: 'Memory the program freed that the allocator keeps, as the retention findings measured it, by cause.',
    kind: 'gauge',
    integer: true,
    points: (s) => {
      if (s.agent.mode === 'proc') return [];
      const retained = retainedByCause(s);
      return RETENTION_CAUSES.map((cause) => ({ value: retained[cause], attributes: { 'leakscope.retention.cause': cause } }));
    },
  },
  {
    name: 'leakscope.thread.unreclaimed',
    unit: 'By',
    description: 'Bytes freed by other threads that only the owner thread can reclaim (mimalloc), for the owners holding most.',
    kind: 'gauge',
    integer: true,
    points: (s) =>
      s.threads
        .map((t) => ({ value: t.heap?.unreclaimed_bytes ?? 0, attributes: { 'thread.id': t.tid, 'thread.name': t.name } }))
        .filter((p) => p.value > 0)
        .sort((a, b) => b.value - a.value)
        .slice(0, TOP_OWNER_THREADS),
  },
  {
    name: 'leakscope.tasks.live',
    unit: '{task}',
    description: 'Live tasks (promises, timers, spans, Tokio or native tasks) by spawn site.',
    kind: 'updown',
    integer: true,
    points: (s) => (s.tasks.tracked ? topSites(s, (site) => site.live) : []),
  },
  {
    name: 'leakscope.tasks.idle',
    unit: '{task}',
    description: 'Live tasks idle for at least the idle threshold, by spawn site.',
    kind: 'updown',
    integer: true,
    points: (s) => (s.tasks.tracked ? topSites(s, (site) => site.idle_over_threshold) : []),
  },
  {
    name: 'leakscope.verdict',
    unit: '1',
    description: "leakscope's verdict: 1 on the series of the current cause, 0 on the others.",
    kind: 'gauge',
    integer: true,
    points: (s) => VERDICT_CAUSES.map((cause) => ({ value: s.verdict.cause === cause ? 1 : 0, attributes: { 'leakscope.verdict.cause': cause } })),
  },
  {
    name: 'leakscope.findings',
    unit: '{finding}',
    description: 'Findings now, by id and severity (0 for a check that found nothing).',
    kind: 'gauge',
    integer: true,
    points: (s) => {
      const counts = new Map<string, number>();
      for (const f of s.findings) counts.set(`${f.id}\0${f.severity}`, (counts.get(`${f.id}\0${f.severity}`) ?? 0) + 1);
      const points: Point[] = [...counts].map(([key, value]) => {
        const [id, severity] = key.split('\0') as [string, string];
        return { value, attributes: { 'leakscope.finding.id': id, 'leakscope.finding.severity': severity } };
      });
      // Every check that ran and found nothing reads 0, so "for 10m" rules see it end.
      for (const detector of DETECTORS)
        if (!s.findings.some((f) => f.id === detector.id) && !s.pending_checks.some((p) => p.id === detector.id))
          points.push({ value: 0, attributes: { 'leakscope.finding.id': detector.id, 'leakscope.finding.severity': 'none' } });
      return points;
    },
  },
  {
    name: 'leakscope.cgroup.memory.limit',
    unit: 'By',
    description: "The tightest memory limit on the process's cgroup or one above it.",
    kind: 'gauge',
    integer: true,
    points: (s) => (s.process.cgroup?.limit_bytes == null ? [] : [{ value: s.process.cgroup.limit_bytes }]),
  },
  {
    name: 'leakscope.cgroup.memory.working_set',
    unit: 'By',
    description: "The cgroup's usage less inactive file pages: what the limit is judged against.",
    kind: 'gauge',
    integer: true,
    points: (s) => (s.process.cgroup ? [{ value: s.process.cgroup.working_set_bytes }] : []),
  },
  {
    name: 'leakscope.memory.limit.time_remaining',
    unit: 's',
    description: "Seconds until the cgroup's memory limit at the rate a growth finding measured; absent when nothing grows or there is no limit.",
    kind: 'gauge',
    integer: false,
    points: (s) => {
      const rate = growthRate(s);
      const reach = rate === null ? null : limitReach(s.process, rate);
      return reach ? [{ value: Math.round(reach.seconds) }] : [];
    },
  },
];
