// Tasks: the live tasks page by page as the agent sorts and filters them,
// or grouped by spawn site (g), or one task's details (Enter).
import { Text } from 'ink';
import { Clip } from './Clip.js';
import { formatBytes, formatCount, formatDuration } from '../src/format.js';
import type { Snapshot, TaskItem } from '../src/model/snapshot.js';
import { type Column, columnsFor, tableHeader, tableRow } from './columns.js';
import { ListRows } from './ListRows.js';
import { SitesView } from './SitesView.js';
import { type ConsoleState, editingFilter, TASK_LIST_CHROME, taskRows } from './state.js';
import { TaskDetail } from './TaskDetail.js';

export interface TasksViewProps {
  readonly state: ConsoleState;
  readonly snapshot: Snapshot;
  readonly width: number;
  readonly height: number;
}

const STATE_LABEL: Readonly<Record<TaskItem['state'], string>> = { idle: 'idle', running: 'run', scheduled: 'sched', completed: 'done' };

/** Columns in the order shown; those with `wide` only when the terminal has room. */
const TASK_COLUMNS: readonly (Column & { readonly wide?: boolean; readonly value: (t: TaskItem) => string })[] = [
  { title: 'id', width: 9, value: (t) => String(t.id) },
  { title: 'state', width: 6, value: (t) => STATE_LABEL[t.state] },
  { title: 'kind', width: 10, value: (t) => t.kind },
  { title: 'name', width: 10, flex: true, value: (t) => t.name || '-' },
  { title: 'spawn site', width: 18, flex: true, value: (t) => t.site },
  { title: 'idle', width: 8, align: 'right', value: (t) => (t.state === 'idle' ? formatDuration(t.idle_ms) : '-') },
  { title: 'age', width: 8, align: 'right', wide: true, value: (t) => formatDuration(t.age_ms) },
  { title: 'polls', width: 8, align: 'right', value: (t) => formatCount(t.polls) },
  { title: 'busy', width: 9, align: 'right', wide: true, value: (t) => formatDuration(t.busy_ms) },
  { title: 'allocated', width: 11, align: 'right', wide: true, value: (t) => formatBytes(t.allocated_bytes) },
  { title: 'live', width: 10, align: 'right', value: (t) => formatBytes(t.live_bytes) },
];

const WIDE_FROM = 110;

function title(state: ConsoleState, s: Snapshot): string {
  const t = state.tasks;
  const parts = [`${formatCount(s.tasks.live)} live`, t.grouped ? `${formatCount(s.tasks.sites_total)} spawn sites` : `sorted by ${t.sort}`];
  if (t.site) parts.push(`site ${t.site}`);
  if (t.filter && !editingFilter(state)) parts.push(`filter "${t.filter}"`);
  return parts.join(' · ');
}

export function TasksView({ state, snapshot: s, width, height }: TasksViewProps) {
  if (!s.tasks.tracked)
    return (
      <Clip height={height}>
        <Text>No tasks: nothing in this process reports tasks to leakscope.</Text>
        <Text dimColor>
          Runtimes report them through the C ABI in native/include/leakscope.h (spawn, poll, wake, complete); threads and the heap are
          in views 3 and 4.
        </Text>
      </Clip>
    );
  const t = state.tasks;
  const editing = editingFilter(state);
  const heading = (
    <Text wrap="truncate">
      <Text bold>Tasks</Text> <Text dimColor>{title(state, s)}</Text>
      {editing ? (
        <Text>
          {'  '}filter: <Text color="cyan">{t.filter}</Text>
          <Text inverse> </Text>
        </Text>
      ) : null}
    </Text>
  );
  if (t.detail)
    return (
      <Clip height={height}>
        {heading}
        <TaskDetail task={t.detail} site={s.tasks.sites.find((site) => site.site === t.detail?.site && site.kind === t.detail.kind) ?? null} width={width} />
      </Clip>
    );
  const rows = height - TASK_LIST_CHROME;
  if (t.grouped)
    return (
      <Clip height={height}>
        {heading}
        <SitesView snapshot={s} filter={t.filter} cursor={t.siteCursor} rows={rows} width={width} />
      </Clip>
    );
  const columns = columnsFor(TASK_COLUMNS, width, WIDE_FROM);
  const list = taskRows(state);
  return (
    <Clip height={height}>
      {heading}
      <ListRows
        header={tableHeader(columns)}
        rowAt={(index) => {
          const task = list.items[index - list.offset];
          return task ? tableRow(columns.map((c) => c.value(task)), columns) : null;
        }}
        total={list.total}
        cursor={t.cursor}
        rows={rows}
        width={width}
        noun="tasks"
        empty={t.filter || t.site ? 'No live task matches.' : 'No live tasks.'}
        pending={list.pending ? 'loaded tasks only · the agent is looking through all of them…' : null}
      />
    </Clip>
  );
}
