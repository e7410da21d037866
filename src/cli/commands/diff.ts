// leakscope diff: what grew between two recorded snapshots. Each argument is
// a snapshot file or a watch recording (which stands for its last
// snapshot); one recording alone compares its first and last snapshots.
import { type ArenaDiff, type Change, diffSnapshots, type SiteDiff, type SnapshotDiff, type StackDiff, type ThreadDiff } from '../../analysis/diff.js';
import { formatBytes, formatCount, formatDuration, padColumn } from '../../format.js';
import { LeakscopeError } from '../../errors.js';
import { readRecording } from '../../model/recording.js';
import type { Snapshot } from '../../model/snapshot.js';

export interface DiffOptions {
  readonly json: boolean;
}

const MAX_ROWS = 10;

function signed(n: number, format: (n: number) => string = formatCount): string {
  return n > 0 ? `+${format(n)}` : n < 0 ? `-${format(-n)}` : '0';
}

function bytesChange(c: Change): string {
  return `${signed(c.delta, formatBytes)} (${formatBytes(c.from)} → ${formatBytes(c.to)})`;
}

function siteLines(sites: readonly SiteDiff[]): string[] {
  if (sites.length === 0) return [];
  const rows = sites.slice(0, MAX_ROWS).map(
    (s) =>
      `  ${padColumn(s.site, 30)}${padColumn(s.kind, 8)}${padColumn(`${s.live.from} → ${s.live.to}`, 16)}${padColumn(signed(s.live.delta), 9)}` +
      `${padColumn(signed(s.idle_over_threshold.delta), 8)}${padColumn(signed(s.allocated_bytes.delta, formatBytes), 13)}${signed(s.live_bytes.delta, formatBytes)}`,
  );
  if (sites.length > MAX_ROWS) rows.push(`  … and ${sites.length - MAX_ROWS} more sites (--json lists all)`);
  return ['', 'Spawn sites:', `  ${padColumn('site', 30)}${padColumn('kind', 8)}${padColumn('live', 16)}${padColumn('Δlive', 9)}${padColumn('Δidle', 8)}${padColumn('Δallocated', 13)}Δlive bytes`, ...rows];
}

function threadLines(d: SnapshotDiff): string[] {
  const lines: string[] = [];
  const started = d.new_threads.reduce((n, t) => n + t.count, 0);
  if (started > 0 || d.gone_threads > 0) {
    const routines = d.new_threads.map((t) => `${t.start_routine} ×${t.count}`).join(', ');
    lines.push('', `Threads: ${started} new${routines ? ` (${routines})` : ''}, ${d.gone_threads} gone`);
  }
  const grown = d.grown_threads.filter((t: ThreadDiff) => t.live_bytes.delta > 0 || t.unreclaimed_bytes.delta > 0).slice(0, MAX_ROWS);
  if (grown.length > 0) {
    if (lines.length === 0) lines.push('', 'Threads:');
    lines.push(`  ${padColumn('tid', 8)}${padColumn('name', 18)}${padColumn('Δlive', 14)}Δunreclaimed`);
    for (const t of grown)
      lines.push(`  ${padColumn(String(t.tid), 8)}${padColumn(t.name, 18)}${padColumn(signed(t.live_bytes.delta, formatBytes), 14)}${signed(t.unreclaimed_bytes.delta, formatBytes)}`);
  }
  return lines;
}

function arenaLines(arenas: readonly ArenaDiff[]): string[] {
  const grown = arenas.filter((a) => a.mapped_bytes.delta > 0).slice(0, MAX_ROWS);
  if (grown.length === 0) return [];
  return [
    '',
    'Arenas that grew:',
    ...grown.map(
      (a) =>
        `  arena ${padColumn(String(a.index), 5)} mapped ${bytesChange(a.mapped_bytes)}, free ${signed(a.free_bytes.delta, formatBytes)}` +
        (a.dirty_bytes ? `, dirty ${signed(a.dirty_bytes.delta, formatBytes)}` : ''),
    ),
  ];
}

function stackLines(stacks: readonly StackDiff[]): string[] {
  const grown = stacks.filter((x) => x.live_bytes.delta > 0).slice(0, MAX_ROWS);
  if (grown.length === 0) return [];
  const total = stacks.reduce((sum, x) => sum + Math.max(0, x.live_bytes.delta), 0);
  return [
    '',
    'Allocation stacks whose live bytes grew:',
    ...grown.map(
      (x) => `  ${padColumn(signed(x.live_bytes.delta, formatBytes), 12)} ${padColumn(`${Math.round((x.live_bytes.delta / total) * 100)}%`, 5)} ${x.site}`,
    ),
  ];
}

export function renderDiff(d: SnapshotDiff): string {
  const lines = [
    `pid ${d.pid}: ${formatDuration(d.elapsed_ms)} between snapshots (${d.from_taken_at} → ${d.to_taken_at})`,
  ];
  if (!d.same_process) lines.push('note: the two snapshots are of different processes');
  lines.push(
    `rss ${bytesChange(d.rss_bytes)}   live ${d.live_bytes ? signed(d.live_bytes.delta, formatBytes) : 'unknown'}` +
      `   threads ${signed(d.threads.delta)}   live tasks ${signed(d.tasks_live.delta)}`,
  );
  lines.push(...siteLines(d.sites), ...stackLines(d.stacks), ...threadLines(d), ...arenaLines(d.arenas));
  if (d.new_findings.length > 0) lines.push('', 'New findings:', ...d.new_findings.map((f) => `  ${f.severity.toUpperCase()} ${f.id}: ${f.summary}`));
  if (d.resolved_findings.length > 0)
    lines.push('', 'Gone since:', ...d.resolved_findings.map((f) => `  ${f.severity.toUpperCase()} ${f.id}: ${f.summary}`));
  return `${lines.join('\n')}\n`;
}

export async function diffCommand(paths: readonly string[], options: DiffOptions): Promise<number> {
  let before: Snapshot;
  let after: Snapshot;
  if (paths.length === 1) {
    const recording = await readRecording(paths[0] as string);
    if (recording.snapshots.length < 2)
      throw new LeakscopeError(`${recording.path} holds one snapshot: give two files, or a watch recording of two or more`);
    before = recording.snapshots[0] as Snapshot;
    after = recording.snapshots.at(-1) as Snapshot;
  } else if (paths.length === 2) {
    const [a, b] = await Promise.all(paths.map((p) => readRecording(p)));
    before = a?.snapshots.at(-1) as Snapshot;
    after = b?.snapshots.at(-1) as Snapshot;
  } else {
    throw new LeakscopeError('diff takes two snapshot files (or one watch recording)');
  }
  const d = diffSnapshots(before, after);
  process.stdout.write(options.json ? `${JSON.stringify(d, null, 2)}\n` : renderDiff(d));
  return 0;
}
