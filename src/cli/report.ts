// The short human report of `leakscope snapshot` (without --json).
import { basename } from 'node:path';
import { headerLive } from '../analysis/measured.js';
import { formatBytes, formatCount, formatDuration, padColumn } from '../format.js';
import type { Snapshot, ThreadInfo } from '../model/snapshot.js';
import { orderThreads, threadName } from '../model/thread-order.js';

const MAX_THREAD_ROWS = 8;

function threadRows(threads: readonly ThreadInfo[]): string[] {
  const interesting = orderThreads(threads.filter((t) => !t.agent_thread)).slice(0, MAX_THREAD_ROWS);
  const header = `  ${padColumn('tid', 8)}${padColumn('name', 18)}${padColumn('state', 6)}${padColumn('idle', 8)}${padColumn('live', 11)}${padColumn('remote-freed', 14)}unreclaimed`;
  const rows = interesting.map((t) => {
    const idle = t.idle_ms === null ? '-' : formatDuration(t.idle_ms);
    const heap = t.heap;
    return (
      `  ${padColumn(String(t.tid), 8)}${padColumn(threadName(t), 18)}${padColumn(t.state, 6)}${padColumn(idle, 8)}` +
      `${padColumn(heap ? formatBytes(heap.live_bytes) : '-', 11)}${padColumn(heap ? formatBytes(heap.remote_freed_bytes) : '-', 14)}` +
      `${heap && heap.unreclaimed_bytes !== null ? formatBytes(heap.unreclaimed_bytes) : '-'}`
    );
  });
  const hidden = threads.filter((t) => !t.agent_thread).length - interesting.length;
  if (hidden > 0) rows.push(`  … and ${hidden} more threads (--json lists all)`);
  return [header, ...rows];
}

const MAX_SITE_ROWS = 8;

function siteRows(s: Snapshot): string[] {
  const tasks = s.tasks;
  if (!tasks.tracked) return [];
  const header =
    `  ${padColumn('spawn site', 30)}${padColumn('kind', 10)}${padColumn('live', 8)}${padColumn('idle', 8)}${padColumn('oldest idle', 13)}` +
    `${padColumn('allocated', 12)}live bytes`;
  const rows = tasks.sites.slice(0, MAX_SITE_ROWS).map(
    (site) =>
      `  ${padColumn(site.site, 30)}${padColumn(site.kind, 10)}${padColumn(formatCount(site.live), 8)}${padColumn(formatCount(site.idle_over_threshold), 8)}` +
      `${padColumn(site.idle > 0 ? formatDuration(site.oldest_idle_ms) : '-', 13)}${padColumn(formatBytes(site.allocated_bytes), 12)}${formatBytes(site.live_bytes)}`,
  );
  const hidden = tasks.sites_total - rows.length;
  if (hidden > 0) rows.push(`  … and ${hidden} more sites (--json lists ${tasks.sites.length})`);
  const states = Object.entries(tasks.by_state)
    .filter(([state, n]) => n > 0 && state !== 'completed')
    // "idle" in the columns means idle for over the threshold; in this count, a task that waits now.
    .map(([state, n]) => `${formatCount(n)} ${state === 'idle' ? 'waiting' : state}`)
    .join(', ');
  return [
    '',
    `Tasks: ${formatCount(tasks.live)} live${states ? ` (${states})` : ''}, ${formatCount(tasks.spawned)} spawned, ` +
      `${formatCount(tasks.completed)} finished; idle = for over ${formatDuration(tasks.idle_threshold_ms)}`,
    header,
    ...rows,
  ];
}

function workerRows(s: Snapshot): string[] {
  const workers = s.node?.workers ?? [];
  if (workers.length === 0) return [];
  const header = `  ${padColumn('thread', 8)}${padColumn('tid', 8)}${padColumn('script', 28)}${padColumn('loop', 7)}${padColumn('timers', 8)}${padColumn('handles', 9)}v8 heap`;
  const rows = workers.map((w) => {
    const handles = Object.values(w.handles).reduce((sum, h) => sum + h.active, 0);
    return (
      `  ${padColumn(String(w.thread_id), 8)}${padColumn(String(w.tid), 8)}${padColumn(basename(w.script ?? '?'), 28)}` +
      `${padColumn(w.responsive ? `${Math.round(w.loop_utilization * 100)}%` : 'busy', 7)}${padColumn(formatCount(w.timers.tracked), 8)}` +
      `${padColumn(formatCount(handles), 9)}${formatBytes(w.v8_heap.used_bytes)}`
    );
  });
  return ['', `Worker threads: ${workers.length} (their promises and timers are in the sites above)`, header, ...rows];
}

const MAX_STACK_ROWS = 5;

/** The stacks holding the most live heap, and the code each names. */
function stackRows(s: Snapshot): string[] {
  const heap = s.heap;
  if (!heap || heap.stacks.length === 0) return [];
  const shown = heap.stacks.filter((x) => x.live_bytes > 0).slice(0, MAX_STACK_ROWS);
  if (shown.length === 0) return [];
  const source = heap.source === 'native' ? `sampled every ~${formatBytes(heap.sample_bytes)}` : "V8's sampling heap profiler";
  return [
    '',
    `Allocation stacks by live bytes (${source}; leakscope profile <pid> --out heap.pb.gz for all):`,
    ...shown.map((x) => `  ${padColumn(formatBytes(x.live_bytes), 11)} ${x.site}`),
    ...heap.notes.map((n) => `  note: ${n}`),
  ];
}

export function renderReport(s: Snapshot): string {
  const lines: string[] = [];
  const alloc = s.allocator;
  const live = headerLive(s);
  lines.push(`pid ${s.pid}  ${s.command}`);
  lines.push(
    `agent: ${s.agent.mode === 'proc' ? 'none (/proc view only)' : `${s.agent.mode} ${s.agent.version ?? ''}`.trim()}` +
      (s.agent.counts === 'sampled' ? ' (counts sampled)' : '') +
      `   allocator: ${alloc.name}${alloc.version ? ` ${alloc.version}` : ''}` +
      (s.agent.dropped_events > 0 ? `   DROPPED EVENTS: ${s.agent.dropped_events}` : ''),
  );
  lines.push(
    `rss ${formatBytes(s.process.rss_bytes)}   live ${live === null ? 'unknown' : `${formatBytes(live.bytes)}${live.source ? ` (${live.source})` : ''}`}` +
      `   threads ${s.process.threads}`,
  );
  const cgroup = s.process.cgroup;
  if (cgroup?.limit_bytes != null)
    lines.push(`cgroup ${cgroup.path}: working set ${formatBytes(cgroup.working_set_bytes)} of a ${formatBytes(cgroup.limit_bytes)} limit` + (cgroup.oom_kills ? `, ${cgroup.oom_kills} OOM kills so far` : ''));
  lines.push(`verdict: ${s.verdict.summary}`);
  for (const note of s.agent.notes) lines.push(`note: ${note}`);
  lines.push('');
  if (s.findings.length === 0) lines.push('No findings.');
  for (const f of s.findings) {
    lines.push(`${f.severity.toUpperCase()} ${f.id}: ${f.summary}`);
    lines.push(`  ${f.message}`);
    lines.push(`  → ${f.remedy}`);
  }
  if (s.pending_checks.length > 0)
    lines.push('', `Not decided yet: ${s.pending_checks.map((p) => `${p.id} (${p.reason})`).join('; ')}`);
  lines.push(...siteRows(s));
  lines.push(...stackRows(s));
  lines.push(...workerRows(s));
  lines.push('', 'Threads:', ...threadRows(s.threads));
  return `${lines.join('\n')}\n`;
}
