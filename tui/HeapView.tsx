// Heap: what the allocator holds beside live data. Bars per arena (glibc,
// jemalloc) or per thread heap (mimalloc): live, fragmented (jemalloc: free
// inside slabs that hold live blocks), retained, dirty; `r` runs the
// allocator's reclaim and shows the RSS it gave back. Below them, where the
// live heap was allocated: a caller tree of the allocation stacks, from the
// code that allocated up through its callers; Enter opens a row.
import { Box, Text } from 'ink';
import { Clip } from './Clip.js';
import { formatBytes, formatDuration } from '../src/format.js';
import type { Snapshot } from '../src/model/snapshot.js';
import { orderThreads } from '../src/model/thread-order.js';
import type { TreeRow } from './caller-tree.js';
import { fitColumns, tableHeader, tableRow } from './columns.js';
import { ListRows } from './ListRows.js';
import type { ReclaimState } from './state.js';

export interface HeapViewProps {
  readonly snapshot: Snapshot;
  readonly reclaim: ReclaimState;
  /** The caller tree's rows as shown (tui/caller-tree.ts), and the one under the cursor. */
  readonly cursor: number;
  readonly rows: readonly TreeRow[];
  readonly width: number;
  readonly height: number;
}

interface BarRow {
  readonly label: string;
  readonly live: number;
  readonly fragmented: number;
  readonly retained: number;
  readonly dirty: number;
  readonly note: string;
}

function Bar({ row, scale, room }: { readonly row: BarRow; readonly scale: number; readonly room: number }) {
  const cells = (bytes: number): number => (bytes <= 0 ? 0 : Math.max(1, Math.round((bytes / scale) * room)));
  return (
    <Text wrap="truncate">
      {row.label.padEnd(12).slice(0, 12)}
      <Text color="green">{'█'.repeat(cells(row.live))}</Text>
      <Text color="magenta">{'▓'.repeat(cells(row.fragmented))}</Text>
      <Text color="yellow">{'▒'.repeat(cells(row.retained))}</Text>
      <Text color="red">{'░'.repeat(cells(row.dirty))}</Text> <Text dimColor>{row.note}</Text>
    </Text>
  );
}

function barRows(s: Snapshot): { readonly what: string; readonly rows: BarRow[] } {
  if (s.allocator.arenas.length > 0)
    return {
      what: 'arenas',
      rows: s.allocator.arenas.map((a) => {
        const dirty = a.dirty_bytes ?? 0;
        const fragmented = a.fragmented_bytes ?? 0;
        return {
          label: `arena ${a.index}`,
          live: a.in_use_bytes,
          fragmented,
          retained: Math.max(0, a.free_bytes - dirty),
          dirty,
          note:
            `${formatBytes(a.mapped_bytes)}: ${formatBytes(a.in_use_bytes)} in use, ` +
            (a.fragmented_bytes ? `${formatBytes(fragmented)} fragmented, ` : '') +
            `${formatBytes(a.free_bytes)} free` +
            (a.dirty_bytes !== null ? `, ${formatBytes(dirty)} dirty` : '') +
            (a.idle_ms !== null ? `, idle ${formatDuration(a.idle_ms)}` : ''),
        };
      }),
    };
  return {
    // mimalloc gives each thread a heap of its own; elsewhere these are the bytes each thread allocated and still holds.
    what: s.allocator.name === 'mimalloc' ? 'thread heaps' : 'live bytes by allocating thread',
    rows: orderThreads(s.threads)
      .filter((t) => t.heap && (t.heap.live_bytes > 0 || (t.heap.unreclaimed_bytes ?? 0) > 0))
      .map((t) => {
        const heap = t.heap!;
        const unreclaimed = heap.unreclaimed_bytes;
        return {
          label: `${t.tid}`,
          live: heap.live_bytes,
          fragmented: 0,
          retained: unreclaimed ?? 0,
          dirty: 0,
          note: `${t.name}: ${formatBytes(heap.live_bytes)} live${unreclaimed === null ? '' : `, ${formatBytes(unreclaimed)} unreclaimed`}`,
        };
      }),
  };
}

function ReclaimLine({ reclaim }: { readonly reclaim: ReclaimState }) {
  switch (reclaim.state) {
    case 'idle':
    case 'confirm':
      return null;
    case 'running':
      return <Text color="yellow">reclaiming…</Text>;
    case 'failed':
      return <Text color="red">reclaim failed: {reclaim.message}</Text>;
    case 'done': {
      const r = reclaim.result;
      const drop = r.before_rss_bytes - r.after_rss_bytes;
      if (!r.performed) return <Text color="yellow">{r.allocator} has no reclaim call leakscope can run.</Text>;
      return (
        <Text>
          <Text bold>{r.action}</Text>: RSS {formatBytes(r.before_rss_bytes)} → {formatBytes(r.after_rss_bytes)}
          <Text color={drop > 0 ? 'green' : undefined} bold>
            {' '}
            ({drop >= 0 ? '−' : '+'}
            {formatBytes(Math.abs(drop))})
          </Text>{' '}
          in {formatDuration(r.duration_ms)}
        </Text>
      );
    }
  }
}

function Stacks({ snapshot: s, cursor, rows, width, height }: Pick<HeapViewProps, 'snapshot' | 'cursor' | 'rows' | 'width' | 'height'>) {
  const heap = s.heap;
  if (!heap) return null;
  const columns = fitColumns(
    [
      { title: 'live', width: 10 },
      { title: 'grown', width: 12 },
      { title: 'allocated at ← called from', width: 20, flex: true },
    ],
    width,
  );
  const source = heap.source === 'native' ? `sampled every ~${formatBytes(heap.sample_bytes)}, ${heap.unwinder} unwinding` : "V8's sampling heap profiler";
  return (
    <Box flexDirection="column" marginTop={1}>
      <Text wrap="truncate">
        <Text bold>Allocation stacks</Text> <Text dimColor>({source}; Enter opens a row's callers, Esc closes all)</Text>
      </Text>
      <ListRows
        header={tableHeader(columns)}
        rowAt={(i) => {
          const row = rows[i];
          if (!row) return null;
          const marker = row.hasCallers ? (row.open ? '▾ ' : '▸ ') : '  ';
          const label = `${'  '.repeat(Math.min(row.depth, 12))}${marker}${row.depth > 0 ? '← ' : ''}${row.label}`;
          return tableRow([formatBytes(row.live_bytes), row.grown > 0 ? `+${formatBytes(row.grown)}` : '', label], columns);
        }}
        total={rows.length}
        cursor={cursor}
        rows={Math.max(2, height - 3)}
        width={width}
        noun="rows"
        empty="No allocation stacks yet: none of the samples taken so far is live."
      />
    </Box>
  );
}

export function HeapView({ snapshot: s, reclaim, cursor, rows: treeRows, width, height }: HeapViewProps) {
  const a = s.allocator;
  const live = a.live_bytes;
  const { what, rows } = barRows(s);
  // Bars share one scale; they take what the longest note leaves.
  const longestNote = Math.max(0, ...rows.map((r) => r.note.length));
  const room = Math.max(10, Math.min(Math.floor(width * 0.4), width - 14 - longestNote));
  const scale = Math.max(1, ...rows.map((r) => r.live + r.fragmented + r.retained + r.dirty));
  // With allocation stacks below, the bars take at most a third of the view.
  const stackRoom = s.heap ? Math.max(6, Math.floor((height * 2) / 3)) : 0;
  const shown = Math.max(1, height - 7 - stackRoom);
  const stats = Object.entries(a.stats)
    .slice(0, 6)
    .map(([name, value]) => `${name} ${typeof value === 'number' && /bytes/.test(name) ? formatBytes(value) : String(value)}`)
    .join(' · ');
  return (
    <Clip height={height}>
      <Text wrap="truncate">
        <Text bold>Heap</Text> {a.name}
        {a.version ? ` ${a.version}` : ''}
        {a.background_thread !== null ? ` · background threads ${a.background_thread ? 'on' : 'off'}` : ''}
        {a.reclaim_action ? <Text dimColor> · r runs {a.reclaim_action}</Text> : null}
      </Text>
      <Text wrap="truncate">
        RSS {formatBytes(s.process.rss_bytes)} · live {live === null ? 'unknown (no agent)' : formatBytes(live)}
        {live !== null ? ` · not live ${formatBytes(Math.max(0, s.process.rss_bytes - live))}` : ''}
      </Text>
      <Text dimColor wrap="truncate">
        {stats || ' '}
      </Text>
      <Text wrap="truncate">
        <Text bold>{what}</Text> <Text color="green">█ live</Text>{' '}
        {rows.some((r) => r.fragmented > 0) ? <Text color="magenta">▓ fragmented </Text> : null}
        <Text color="yellow">▒ {s.allocator.name === 'jemalloc' ? 'muzzy' : 'retained'}</Text>{' '}
        {what === 'arenas' ? <Text color="red">░ dirty</Text> : null}
      </Text>
      {rows.length === 0 ? <Text dimColor>Nothing to draw: the allocator reports no {what} here.</Text> : null}
      {rows.slice(0, shown).map((row) => (
        <Bar key={row.label} row={row} scale={scale} room={room} />
      ))}
      {rows.length > shown ? <Text dimColor>… and {rows.length - shown} more {what}</Text> : null}
      <ReclaimLine reclaim={reclaim} />
      <Stacks snapshot={s} cursor={cursor} rows={treeRows} width={width} height={stackRoom} />
    </Clip>
  );
}
