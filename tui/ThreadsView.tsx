// Threads: who holds the heap. Unreclaimed bytes first (a sleeping owner's
// delayed frees), then live bytes; CPU and allocation rates between snapshots.
import { Text } from 'ink';
import { Clip } from './Clip.js';
import { formatBytes, formatDuration } from '../src/format.js';
import type { Snapshot, ThreadInfo } from '../src/model/snapshot.js';
import { orderThreads, threadName } from '../src/model/thread-order.js';
import { type Column, columnsFor, tableHeader, tableRow } from './columns.js';
import { ListRows } from './ListRows.js';

export interface ThreadsViewProps {
  readonly snapshot: Snapshot;
  /** An earlier snapshot of the same process, for rates; null when there is none yet. */
  readonly earlier: Snapshot | null;
  readonly cursor: number;
  readonly width: number;
  readonly height: number;
}

interface ThreadRow {
  readonly thread: ThreadInfo;
  /** Percent of one core since the earlier snapshot. */
  readonly cpuPercent: number | null;
  readonly allocBytesPerS: number | null;
}

export function threadRates(snapshot: Snapshot, earlier: Snapshot | null): ThreadRow[] {
  const seconds = earlier ? (Date.parse(snapshot.taken_at) - Date.parse(earlier.taken_at)) / 1000 : 0;
  const before = new Map((earlier?.threads ?? []).map((t) => [t.tid, t]));
  return orderThreads(snapshot.threads).map((thread) => {
    const then = before.get(thread.tid);
    if (!then || seconds <= 0) return { thread, cpuPercent: null, allocBytesPerS: null };
    const allocated = thread.heap && then.heap ? (thread.heap.allocated_bytes - then.heap.allocated_bytes) / seconds : null;
    return { thread, cpuPercent: ((thread.cpu_ms - then.cpu_ms) / 10 / seconds), allocBytesPerS: allocated };
  });
}

const COLUMNS: readonly (Column & { readonly wide?: boolean; readonly value: (r: ThreadRow) => string })[] = [
  { title: 'tid', width: 8, value: (r) => String(r.thread.tid) },
  { title: 'name', width: 14, flex: true, value: (r) => `${threadName(r.thread)}${r.thread.agent_thread ? ' (agent)' : ''}` },
  { title: 'st', width: 3, value: (r) => r.thread.state },
  { title: 'idle', width: 8, align: 'right', value: (r) => (r.thread.idle_ms === null ? '-' : formatDuration(r.thread.idle_ms)) },
  { title: 'cpu', width: 6, align: 'right', value: (r) => (r.cpuPercent === null ? '-' : `${Math.round(r.cpuPercent)}%`) },
  { title: 'alloc/s', width: 11, align: 'right', value: (r) => (r.allocBytesPerS === null ? '-' : formatBytes(Math.round(r.allocBytesPerS))) },
  { title: 'live', width: 11, align: 'right', wide: true, value: (r) => (r.thread.heap ? formatBytes(r.thread.heap.live_bytes) : '-') },
  { title: 'remote-freed', width: 13, align: 'right', value: (r) => (r.thread.heap ? formatBytes(r.thread.heap.remote_freed_bytes) : '-') },
  { title: 'unreclaimed', width: 12, align: 'right', value: (r) => (r.thread.heap && r.thread.heap.unreclaimed_bytes !== null ? formatBytes(r.thread.heap.unreclaimed_bytes) : '-') },
  { title: 'start routine', width: 20, flex: true, wide: true, value: (r) => r.thread.start_routine ?? '-' },
];

const WIDE_FROM = 120;

export function ThreadsView({ snapshot, earlier, cursor, width, height }: ThreadsViewProps) {
  const rows = threadRates(snapshot, earlier);
  const wide = width >= WIDE_FROM;
  const columns = columnsFor(COLUMNS, width, WIDE_FROM);
  const selected = rows[cursor]?.thread;
  return (
    <Clip height={height}>
      <Text wrap="truncate">
        <Text bold>Threads</Text>
        <Text dimColor> {snapshot.threads.length} · rates over the last refresh · unreclaimed = freed by others, not yet taken back by the owner</Text>
      </Text>
      <ListRows
        header={tableHeader(columns)}
        rowAt={(i) => {
          const row = rows[i];
          return row ? tableRow(columns.map((c) => c.value(row)), columns) : null;
        }}
        total={rows.length}
        cursor={cursor}
        rows={height - 4}
        width={width}
        noun="threads"
        empty="No threads."
      />
      {selected ? (
        <Text dimColor wrap="truncate">
          {selected.tid}: {selected.start_routine ? `started at ${selected.start_routine}` : 'start routine unknown'}
          {selected.creator_tid ? ` by ${selected.creator_tid}` : ''}
          {selected.heap && !wide ? `, ${formatBytes(selected.heap.live_bytes)} live` : ''}
        </Text>
      ) : null}
    </Clip>
  );
}
