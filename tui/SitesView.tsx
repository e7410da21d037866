// Tasks grouped by spawn site: where the live and idle tasks come from and
// what they hold. Enter lists one site's tasks.
import { formatBytes, formatCount, formatDuration } from '../src/format.js';
import type { Snapshot, TaskSite } from '../src/model/snapshot.js';
import { type Column, columnsFor, tableHeader, tableRow } from './columns.js';
import { ListRows } from './ListRows.js';
import { visibleSites } from './state.js';

export interface SitesViewProps {
  readonly snapshot: Snapshot;
  readonly filter: string;
  readonly cursor: number;
  readonly rows: number;
  readonly width: number;
}

const SITE_COLUMNS: readonly (Column & { readonly wide?: boolean; readonly value: (s: TaskSite) => string })[] = [
  { title: 'spawn site', width: 18, flex: true, value: (s) => s.site },
  { title: 'kind', width: 10, value: (s) => s.kind },
  { title: 'live', width: 9, align: 'right', value: (s) => formatCount(s.live) },
  { title: 'idle', width: 9, align: 'right', value: (s) => formatCount(s.idle_over_threshold) },
  { title: 'oldest idle', width: 12, align: 'right', value: (s) => (s.idle > 0 ? formatDuration(s.oldest_idle_ms) : '-') },
  { title: 'spawned', width: 10, align: 'right', wide: true, value: (s) => formatCount(s.spawned) },
  { title: 'wakes', width: 10, align: 'right', wide: true, value: (s) => formatCount(s.wakes) },
  { title: 'longest poll', width: 13, align: 'right', wide: true, value: (s) => formatDuration(s.longest_poll_ms) },
  { title: 'allocated', width: 11, align: 'right', value: (s) => formatBytes(s.allocated_bytes) },
  { title: 'live bytes', width: 11, align: 'right', value: (s) => formatBytes(s.live_bytes) },
];

const WIDE_FROM = 120;

export function SitesView({ snapshot, filter, cursor, rows, width }: SitesViewProps) {
  const sites = visibleSites(snapshot, filter);
  const columns = columnsFor(SITE_COLUMNS, width, WIDE_FROM);
  return (
    <ListRows
      header={tableHeader(columns)}
      rowAt={(i) => {
        const site = sites[i];
        return site ? tableRow(columns.map((c) => c.value(site)), columns) : null;
      }}
      total={sites.length}
      cursor={cursor}
      rows={rows}
      width={width}
      noun="sites"
      empty={filter ? 'No spawn site matches.' : 'No spawn sites.'}
    />
  );
}
