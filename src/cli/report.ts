// The short human report of `leakscope snapshot` (without --json).
import { verdict } from '../analysis/index.js';
import { formatBytes, formatCount, formatDuration } from '../format.js';
import type { Snapshot, ThreadInfo } from '../model/snapshot.js';

const MAX_THREAD_ROWS = 8;

function pad(text: string, width: number): string {
  return text.length >= width ? text.slice(0, width) : text + ' '.repeat(width - text.length);
}

function threadRows(threads: readonly ThreadInfo[]): string[] {
  const interesting = threads
    .filter((t) => !t.agent_thread)
    .sort(
      (a, b) =>
        (b.heap?.unreclaimed_bytes ?? 0) - (a.heap?.unreclaimed_bytes ?? 0) ||
        (b.heap?.live_bytes ?? 0) - (a.heap?.live_bytes ?? 0) ||
        a.tid - b.tid,
    )
    .slice(0, MAX_THREAD_ROWS);
  const header = `  ${pad('tid', 8)}${pad('name', 16)}${pad('state', 6)}${pad('idle', 8)}${pad('live', 11)}${pad('remote-freed', 14)}unreclaimed`;
  const rows = interesting.map((t) => {
    const idle = t.idle_ms === null ? '-' : formatDuration(t.idle_ms);
    const heap = t.heap;
    return (
      `  ${pad(String(t.tid), 8)}${pad(t.name, 16)}${pad(t.state, 6)}${pad(idle, 8)}` +
      `${pad(heap ? formatBytes(heap.live_bytes) : '-', 11)}${pad(heap ? formatBytes(heap.remote_freed_bytes) : '-', 14)}` +
      `${heap ? formatBytes(heap.unreclaimed_bytes) : '-'}`
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
    `  ${pad('spawn site', 30)}${pad('kind', 8)}${pad('live', 8)}${pad('idle', 8)}${pad('oldest idle', 13)}` +
    `${pad('allocated', 12)}live bytes`;
  const rows = tasks.sites.slice(0, MAX_SITE_ROWS).map(
    (site) =>
      `  ${pad(site.site, 30)}${pad(site.kind, 8)}${pad(formatCount(site.live), 8)}${pad(formatCount(site.idle_over_threshold), 8)}` +
      `${pad(site.idle > 0 ? formatDuration(site.oldest_idle_ms) : '-', 13)}${pad(formatBytes(site.allocated_bytes), 12)}${formatBytes(site.live_bytes)}`,
  );
  const hidden = tasks.sites_total - rows.length;
  if (hidden > 0) rows.push(`  … and ${hidden} more sites (--json lists ${tasks.sites.length})`);
  const states = Object.entries(tasks.by_state)
    .filter(([state, n]) => n > 0 && state !== 'completed')
    .map(([state, n]) => `${formatCount(n)} ${state}`)
    .join(', ');
  return [
    '',
    `Tasks: ${formatCount(tasks.live)} live${states ? ` (${states})` : ''}, ${formatCount(tasks.spawned)} spawned, ` +
      `${formatCount(tasks.completed)} finished; idle = for over ${formatDuration(tasks.idle_threshold_ms)}`,
    header,
    ...rows,
  ];
}

export function renderReport(s: Snapshot): string {
  const lines: string[] = [];
  const alloc = s.allocator;
  lines.push(`pid ${s.pid}  ${s.command}`);
  lines.push(
    `agent: ${s.agent.mode === 'proc' ? 'none (/proc view only)' : `${s.agent.mode} ${s.agent.version ?? ''}`.trim()}` +
      `   allocator: ${alloc.name}${alloc.version ? ` ${alloc.version}` : ''}` +
      (s.agent.dropped_events > 0 ? `   DROPPED EVENTS: ${s.agent.dropped_events}` : ''),
  );
  lines.push(
    `rss ${formatBytes(s.process.rss_bytes)}   live ${alloc.live_bytes === null ? 'unknown' : formatBytes(alloc.live_bytes)}` +
      `   threads ${s.process.threads}`,
  );
  lines.push(`verdict: ${verdict(s)}`);
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
  lines.push('', 'Threads:', ...threadRows(s.threads));
  return `${lines.join('\n')}\n`;
}
