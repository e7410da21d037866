// The console's state and its reducer: everything the screen shows follows
// from this, and every change goes through `reduce`. Pure; no I/O.
import type { TaskQuery, TaskSort } from '../src/conn/attach.js';
import type { FeedStatus } from '../src/conn/live-feed.js';
import type { ReclaimResult } from '../src/model/agent-facts.js';
import type { Snapshot, TaskItem } from '../src/model/snapshot.js';
import { callerChain, callerTree, pathsOf, type TreeRow } from './caller-tree.js';

export const VIEWS = ['findings', 'tasks', 'threads', 'heap'] as const;
export type ViewName = (typeof VIEWS)[number];

export const VIEW_TITLES: Readonly<Record<ViewName, string>> = {
  findings: 'Findings',
  tasks: 'Tasks',
  threads: 'Threads',
  heap: 'Heap',
};

/** The orders the Tasks view cycles through with `o` (the agent sorts; largest first). */
export const TASK_VIEW_SORTS: readonly TaskSort[] = ['idle', 'age', 'polls', 'busy', 'allocated', 'live_bytes', 'id'];

/** Tasks fetched per request beyond the rows on screen: scrolling inside them needs no round trip. */
export const TASK_PAGE_SLACK = 50;

/** Live mode keeps this many recent snapshots, for rates. */
const LIVE_FRAMES_KEPT = 8;

/** What the live feed last said, or that it has said nothing yet; a replay has none. */
export type Connection = FeedStatus | { readonly state: 'connecting' } | { readonly state: 'recording' };

export type ReclaimState =
  | { readonly state: 'idle' }
  | { readonly state: 'confirm' }
  | { readonly state: 'running' }
  | { readonly state: 'done'; readonly result: ReclaimResult }
  | { readonly state: 'failed'; readonly message: string };

export interface TasksUi {
  readonly sort: TaskSort;
  readonly filter: string;
  /** The filter before `/` was pressed, to restore on Esc; null when not editing. */
  readonly filterBefore: string | null;
  /** Sites instead of tasks. */
  readonly grouped: boolean;
  /** Only the tasks of this spawn site (entered from the grouped list). */
  readonly site: string | null;
  /** Index into the task list (all pages), or into the sites when grouped. */
  readonly cursor: number;
  readonly siteCursor: number;
  /** The task whose details are open, as last seen. */
  readonly detail: TaskItem | null;
}

export interface ConsoleState {
  readonly source: 'live' | 'replay';
  /** Live: the latest snapshots, newest last. Replay: the whole recording. */
  readonly frames: readonly Snapshot[];
  readonly frameIndex: number;
  readonly view: ViewName;
  readonly help: boolean;
  readonly paused: boolean;
  readonly connection: Connection;
  readonly reclaim: ReclaimState;
  readonly notice: string | null;
  readonly tasks: TasksUi;
  /** The task query the newest live snapshot answered; null when not known (a replay, or a snapshot pushed without one). */
  readonly answered: TaskQuery | null;
  readonly findingsCursor: number;
  readonly threadsCursor: number;
  /** Heap view: the row of the caller tree under the cursor, and the rows whose callers are open (their paths). */
  readonly heapCursor: number;
  readonly heapOpen: readonly string[];
}

export type Action =
  // From the outside (the feed and the command wiring).
  | { readonly type: 'snapshot'; readonly snapshot: Snapshot; readonly query?: TaskQuery }
  | { readonly type: 'recording'; readonly snapshots: readonly Snapshot[] }
  | { readonly type: 'connection'; readonly connection: Connection }
  | { readonly type: 'reclaim'; readonly reclaim: ReclaimState }
  | { readonly type: 'notice'; readonly text: string | null }
  // From the keyboard.
  | { readonly type: 'show-view'; readonly view: ViewName }
  | { readonly type: 'cycle-view'; readonly step: 1 | -1 }
  | { readonly type: 'toggle-help' }
  | { readonly type: 'toggle-pause' }
  | { readonly type: 'move'; readonly delta: number }
  | { readonly type: 'move-to'; readonly end: 'first' | 'last' }
  | { readonly type: 'filter-start' }
  | { readonly type: 'filter-type'; readonly text: string }
  | { readonly type: 'filter-erase' }
  | { readonly type: 'filter-done'; readonly keep: boolean }
  | { readonly type: 'toggle-group' }
  | { readonly type: 'cycle-sort' }
  | { readonly type: 'open' }
  | { readonly type: 'back' }
  | { readonly type: 'step'; readonly delta: number };

export function initialState(source: 'live' | 'replay'): ConsoleState {
  return {
    source,
    frames: [],
    frameIndex: 0,
    view: 'findings',
    help: false,
    paused: false,
    connection: source === 'live' ? { state: 'connecting' } : { state: 'recording' },
    reclaim: { state: 'idle' },
    notice: null,
    tasks: { sort: 'idle', filter: '', filterBefore: null, grouped: false, site: null, cursor: 0, siteCursor: 0, detail: null },
    answered: null,
    findingsCursor: 0,
    threadsCursor: 0,
    heapCursor: 0,
    heapOpen: [],
  };
}

export function displayed(state: ConsoleState): Snapshot | null {
  return state.frames[state.frameIndex] ?? null;
}

/** The newest snapshot at least `minGapMs` older than the displayed one, for rates. */
export function earlierFrame(state: ConsoleState, minGapMs = 500): Snapshot | null {
  const now = displayed(state);
  if (!now) return null;
  const nowMs = Date.parse(now.taken_at);
  for (let i = state.frameIndex - 1; i >= 0; i--) {
    const frame = state.frames[i]!;
    if (nowMs - Date.parse(frame.taken_at) >= minGapMs) return frame;
  }
  return null;
}

/** Lines above and below the view: header 3, tabs 1, footer 2, and the last row left empty so the terminal never scrolls. */
export const CHROME_ROWS = 7;

/** Lines of the Tasks view around its rows: title, column header, position. */
export const TASK_LIST_CHROME = 3;

/** Rows the view gets at this terminal height. */
export function viewRows(terminalRows: number): number {
  return terminalRows - CHROME_ROWS;
}

/** Task rows on screen at this terminal height: what a page key moves and the agent is asked for. */
export function listRows(terminalRows: number): number {
  return Math.max(3, viewRows(terminalRows) - TASK_LIST_CHROME);
}

/** The first row of the screenful holding `cursor`: lists turn a page at a time. */
export function pageTop(cursor: number, rows: number): number {
  return Math.floor(cursor / rows) * rows;
}

/** What the agent should list for the Tasks view: the screenful around the cursor and some slack. */
export function taskQueryOf(tasks: TasksUi, rows: number): TaskQuery {
  const top = pageTop(tasks.cursor, rows);
  const offset = Math.floor(top / TASK_PAGE_SLACK) * TASK_PAGE_SLACK;
  return {
    offset,
    limit: rows + TASK_PAGE_SLACK,
    sort: tasks.sort,
    state: 'live',
    ...(tasks.filter ? { filter: tasks.filter } : {}),
    ...(tasks.site ? { site: tasks.site } : {}),
  };
}

function clamp(value: number, count: number): number {
  return Math.max(0, Math.min(value, count - 1));
}

function listLength(state: ConsoleState): number {
  const s = displayed(state);
  if (!s) return 0;
  switch (state.view) {
    case 'findings':
      return s.findings.length;
    case 'threads':
      return s.threads.length;
    case 'tasks':
      return state.tasks.grouped ? visibleSites(s, state.tasks.filter).length : taskRows(state).total;
    case 'heap':
      return heapRows(state).length;
  }
}

/** The spawn sites the grouped list shows: all, or those whose site or kind contains the filter. */
export function visibleSites(s: Snapshot, filter: string): Snapshot['tasks']['sites'] {
  if (!filter) return s.tasks.sites;
  const needle = filter.toLowerCase();
  return s.tasks.sites.filter((site) => site.site.toLowerCase().includes(needle) || site.kind.toLowerCase().includes(needle));
}

function moveCursor(state: ConsoleState, to: (current: number, length: number) => number): ConsoleState {
  const length = listLength(state);
  const at = (current: number): number => (length === 0 ? 0 : clamp(to(current, length), length));
  switch (state.view) {
    case 'findings':
      return { ...state, findingsCursor: at(state.findingsCursor) };
    case 'threads':
      return { ...state, threadsCursor: at(state.threadsCursor) };
    case 'tasks':
      if (state.tasks.detail) return state;
      return state.tasks.grouped
        ? { ...state, tasks: { ...state.tasks, siteCursor: at(state.tasks.siteCursor) } }
        : { ...state, tasks: { ...state.tasks, cursor: at(state.tasks.cursor) } };
    case 'heap':
      return { ...state, heapCursor: at(state.heapCursor) };
  }
}

/** The task list as the Tasks view pages it: `items` start at index `offset` of `total`. */
export interface TaskRows {
  readonly total: number;
  readonly offset: number;
  readonly items: readonly TaskItem[];
  /** The agent has not answered the filter, site or order shown yet: these are the loaded rows that match it. */
  readonly pending: boolean;
}

/** Whether the agent's page was taken with the filter, site and order the Tasks view shows now. */
function answersView(answered: TaskQuery | null, tasks: TasksUi): boolean {
  if (!answered) return true;
  return (answered.filter ?? '') === tasks.filter && (answered.site ?? null) === tasks.site && answered.sort === tasks.sort;
}

/** The loaded tasks that the view's site and filter keep (the agent's rule: the filter is in kind, name or site, any case). */
function filterLoaded(items: readonly TaskItem[], { filter, site }: TasksUi): TaskItem[] {
  const needle = filter.toLowerCase();
  return items.filter(
    (t) => (!site || t.site === site) && (!needle || [t.kind, t.name, t.site].some((text) => text.toLowerCase().includes(needle))),
  );
}

/**
 * Live, the agent filtered and paged the list (taskQueryOf); until it has
 * answered a new filter, the loaded rows are filtered here so that typing
 * shows at once. A recording holds the page it was recorded with, so a
 * replay filters that page here.
 */
export function taskRows(state: ConsoleState): TaskRows {
  const s = displayed(state);
  if (!s) return { total: 0, offset: 0, items: [], pending: false };
  const live = state.source === 'live';
  if (live && answersView(state.answered, state.tasks))
    return { total: s.tasks.items_total, offset: s.tasks.items_offset, items: s.tasks.items, pending: false };
  const items = filterLoaded(s.tasks.items, state.tasks);
  return { total: items.length, offset: 0, items, pending: live };
}

/** The task under the cursor, when its page is loaded. */
export function taskAtCursor(state: ConsoleState): TaskItem | null {
  const rows = taskRows(state);
  return rows.items[state.tasks.cursor - rows.offset] ?? null;
}

function withSnapshot(state: ConsoleState, snapshot: Snapshot): ConsoleState {
  const frames = [...state.frames, snapshot].slice(-LIVE_FRAMES_KEPT);
  const detail = state.tasks.detail;
  const fresh = detail ? snapshot.tasks.items.find((t) => t.id === detail.id) : undefined;
  const next: ConsoleState = {
    ...state,
    frames,
    frameIndex: frames.length - 1,
    tasks: fresh ? { ...state.tasks, detail: fresh } : state.tasks,
  };
  // Lists shrink: keep cursors on a row that exists.
  return moveCursor(next, (current) => current);
}

/** The Heap view's caller tree as shown: its rows with the open ones' callers. */
export function heapRows(state: ConsoleState): TreeRow[] {
  return callerTree(displayed(state)?.heap, new Set(state.heapOpen));
}

function openSelected(state: ConsoleState): ConsoleState {
  const s = displayed(state);
  if (!s) return state;
  if (state.view === 'findings') {
    // A finding that names allocation stacks: to the first of them, its callers open.
    const id = s.findings[state.findingsCursor]?.stacks?.[0];
    const stack = id ? s.heap?.stacks.find((x) => x.id === id) : undefined;
    if (!stack) return state;
    const heapOpen = [...new Set([...state.heapOpen, ...pathsOf(stack)])];
    const root = callerChain(stack)[0];
    const at = callerTree(s.heap, new Set(heapOpen)).findIndex((row) => row.depth === 0 && row.label === root);
    return { ...state, view: 'heap', heapOpen, heapCursor: Math.max(0, at) };
  }
  if (state.view === 'heap') {
    const row = heapRows(state)[state.heapCursor];
    if (!row?.hasCallers) return state;
    return { ...state, heapOpen: row.open ? state.heapOpen.filter((p) => p !== row.path) : [...state.heapOpen, row.path] };
  }
  if (state.view !== 'tasks') return state;
  const tasks = state.tasks;
  if (tasks.grouped) {
    const site = visibleSites(s, tasks.filter)[tasks.siteCursor];
    if (!site) return state;
    return { ...state, tasks: { ...tasks, grouped: false, site: site.site, filter: '', cursor: 0 } };
  }
  const task = taskAtCursor(state);
  return task ? { ...state, tasks: { ...tasks, detail: task } } : state;
}

function goBack(state: ConsoleState): ConsoleState {
  if (state.help) return { ...state, help: false };
  if (state.reclaim.state === 'confirm') return { ...state, reclaim: { state: 'idle' } };
  if (state.view === 'heap' && state.heapOpen.length > 0) return { ...state, heapOpen: [], heapCursor: 0 };
  if (state.view !== 'tasks') return state;
  const tasks = state.tasks;
  if (tasks.detail) return { ...state, tasks: { ...tasks, detail: null } };
  if (tasks.site) return { ...state, tasks: { ...tasks, site: null, grouped: true, cursor: 0 } };
  if (tasks.filter) return { ...state, tasks: { ...tasks, filter: '', cursor: 0 } };
  return state;
}

export function reduce(state: ConsoleState, action: Action): ConsoleState {
  switch (action.type) {
    case 'snapshot':
      return withSnapshot({ ...state, answered: action.query ?? null }, action.snapshot);
    case 'recording':
      return { ...state, frames: action.snapshots, frameIndex: action.snapshots.length - 1 };
    case 'connection':
      return { ...state, connection: action.connection };
    case 'reclaim':
      return { ...state, reclaim: action.reclaim };
    case 'notice':
      return { ...state, notice: action.text };
    case 'show-view':
      return { ...state, view: action.view, help: false };
    case 'cycle-view': {
      const next = (VIEWS.indexOf(state.view) + action.step + VIEWS.length) % VIEWS.length;
      return { ...state, view: VIEWS[next]!, help: false };
    }
    case 'toggle-help':
      return { ...state, help: !state.help };
    case 'toggle-pause':
      return state.source === 'live' ? { ...state, paused: !state.paused } : state;
    case 'move':
      return moveCursor(state, (current) => current + action.delta);
    case 'move-to':
      return moveCursor(state, (_current, length) => (action.end === 'first' ? 0 : length - 1));
    case 'filter-start':
      return { ...state, view: 'tasks', tasks: { ...state.tasks, filterBefore: state.tasks.filter, detail: null } };
    case 'filter-type':
      return { ...state, tasks: { ...state.tasks, filter: state.tasks.filter + action.text, cursor: 0, siteCursor: 0 } };
    case 'filter-erase':
      return { ...state, tasks: { ...state.tasks, filter: state.tasks.filter.slice(0, -1), cursor: 0, siteCursor: 0 } };
    case 'filter-done': {
      const filter = action.keep ? state.tasks.filter : (state.tasks.filterBefore ?? '');
      return { ...state, tasks: { ...state.tasks, filter, filterBefore: null } };
    }
    case 'toggle-group':
      return { ...state, tasks: { ...state.tasks, grouped: !state.tasks.grouped, site: null, detail: null, cursor: 0, siteCursor: 0 } };
    case 'cycle-sort': {
      const next = TASK_VIEW_SORTS[(TASK_VIEW_SORTS.indexOf(state.tasks.sort) + 1) % TASK_VIEW_SORTS.length]!;
      return { ...state, tasks: { ...state.tasks, sort: next, cursor: 0 } };
    }
    case 'open':
      return openSelected(state);
    case 'back':
      return goBack(state);
    case 'step': {
      if (state.source !== 'replay' || state.frames.length === 0) return state;
      return moveCursor({ ...state, frameIndex: clamp(state.frameIndex + action.delta, state.frames.length) }, (current) => current);
    }
  }
}

/** Editing the tasks filter: keys are text until Enter or Esc. */
export function editingFilter(state: ConsoleState): boolean {
  return state.tasks.filterBefore !== null;
}
