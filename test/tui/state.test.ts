// The console's reducer and keyboard map, without rendering: what each key
// does to the state, and which task page the agent is asked for.
import test from 'ava';
import type { Key } from 'ink';
import { analyze } from '../../src/analysis/index.js';
import type { Snapshot } from '../../src/model/snapshot.js';
import { commandFor, commandsFor } from '../../tui/keys.js';
import { type Action, type ConsoleState, heapRows, initialState, listRows, reduce, taskAtCursor, taskQueryOf, taskRows, TASK_PAGE_SLACK } from '../../tui/state.js';
import { observation, site, taskItem, tasks } from '../helpers/observation.js';

const NO_KEY: Key = {
  upArrow: false, downArrow: false, leftArrow: false, rightArrow: false, pageDown: false, pageUp: false, home: false, end: false,
  return: false, escape: false, ctrl: false, shift: false, tab: false, backspace: false, delete: false, meta: false,
  super: false, hyper: false, capsLock: false, numLock: false,
};

const ROWS = listRows(24);

/** A snapshot listing `items` tasks of `total` from `offset`. */
function snapshotWith(total: number, offset = 0, items = Math.min(total - offset, ROWS + TASK_PAGE_SLACK)): Snapshot {
  return analyze(
    observation((o) => {
      o.tasks = tasks([site({ site: 'a.c:1', live: total, idle: total }), site({ site: 'b.c:2', kind: 'timer', live: 1 })], {
        items_total: total,
        items_offset: offset,
        items: Array.from({ length: items }, (_, i) => taskItem({ id: offset + i + 1, site: 'a.c:1' })),
      });
    }),
  );
}

function press(state: ConsoleState, input: string, key: Partial<Key> = {}) {
  const command = commandFor(input, { ...NO_KEY, ...key }, state, ROWS);
  return { state: command.actions.reduce(reduce, state), intents: command.intents };
}

function keys(state: ConsoleState, ...inputs: (string | Partial<Key>)[]): ConsoleState {
  return inputs.reduce<ConsoleState>((s, input) => (typeof input === 'string' ? press(s, input).state : press(s, '', input).state), state);
}

const live = (snapshot: Snapshot): ConsoleState => reduce(initialState('live'), { type: 'snapshot', snapshot });

test('the task query asks for the screenful around the cursor and some slack, sorted and filtered as shown', (t) => {
  let state = keys(live(snapshotWith(1000)), '2');
  t.deepEqual(taskQueryOf(state.tasks, ROWS), { offset: 0, limit: ROWS + TASK_PAGE_SLACK, sort: 'idle', state: 'live' });
  // Moving inside the loaded page keeps the query: no round trip.
  state = keys(state, { downArrow: true }, { pageDown: true });
  t.is(state.tasks.cursor, ROWS + 1);
  t.is(taskQueryOf(state.tasks, ROWS).offset, 0);
  // Far down, the page moves with the cursor.
  state = keys(state, { pageDown: true }, { pageDown: true }, { pageDown: true }, { pageDown: true });
  t.is(state.tasks.cursor, 5 * ROWS + 1);
  const query = taskQueryOf(state.tasks, ROWS);
  t.true(query.offset! <= 5 * ROWS && 5 * ROWS + ROWS <= query.offset! + query.limit!, 'the screenful lies inside the page');
  // The end of a 1,000-task list, not of the 64 loaded.
  state = keys(state, { end: true });
  t.is(state.tasks.cursor, 999);
  t.is(taskAtCursor(state), null, 'that page is not loaded yet');
  t.is(taskAtCursor(reduce(state, { type: 'snapshot', snapshot: snapshotWith(1000, 950) }))?.id, 1000);
});

test('typing a filter filters at once; Esc restores the filter from before', (t) => {
  let state = keys(live(snapshotWith(100)), '2', { downArrow: true }, '/', 'h', 'e', 'a');
  t.is(state.tasks.filter, 'hea');
  t.is(state.tasks.cursor, 0);
  t.is(taskQueryOf(state.tasks, ROWS).filter, 'hea');
  // While editing, keys are text: q does not quit, 2 is not a view.
  const typed = press(state, 'q');
  t.deepEqual(typed.intents, []);
  t.is(typed.state.tasks.filter, 'heaq');
  state = keys(state, { backspace: true }, { return: true });
  t.is(state.tasks.filter, 'he');
  state = keys(state, '/', 'x', { escape: true });
  t.is(state.tasks.filter, 'he', 'Esc while editing drops only the new text');
  state = keys(state, { escape: true });
  t.is(state.tasks.filter, '', 'Esc outside editing clears the filter');
});

test('until the agent answers a new filter, the loaded rows that match it are shown, marked pending', (t) => {
  const answered = (query: ReturnType<typeof taskQueryOf>, snapshot: Snapshot): Action => ({ type: 'snapshot', snapshot, query });
  const mixed = analyze(
    observation((o) => {
      o.tasks = tasks([site({ site: 'a.c:1', live: 3 }), site({ site: 'b.c:2', live: 2 })], {
        items_total: 5,
        items_offset: 0,
        items: [
          taskItem({ id: 1, site: 'a.c:1', name: 'heartbeat' }),
          taskItem({ id: 2, site: 'a.c:1', name: 'lost' }),
          taskItem({ id: 3, site: 'b.c:2', name: 'heartbeat' }),
          taskItem({ id: 4, site: 'b.c:2', name: 'reader' }),
          taskItem({ id: 5, site: 'a.c:1', name: 'Heartbeat' }),
        ],
      });
    }),
  );
  let state = keys(initialState('live'), '2');
  state = reduce(state, answered(taskQueryOf(state.tasks, ROWS), mixed));
  t.like(taskRows(state), { total: 5, pending: false }, 'the agent answered the unfiltered list');
  state = keys(state, '/', 'h', 'e', 'a', 'r', 't');
  const provisional = taskRows(state);
  t.true(provisional.pending);
  t.deepEqual(
    provisional.items.map((task) => task.id),
    [1, 3, 5],
    'name, any case',
  );
  // The agent's answer replaces them, whatever it holds.
  const filtered = analyze(
    observation((o) => {
      o.tasks = tasks([site({ site: 'a.c:1', live: 3 })], { items_total: 40, items_offset: 0, items: [taskItem({ id: 9, site: 'a.c:1', name: 'heartbeat' })] });
    }),
  );
  state = reduce(state, answered(taskQueryOf(state.tasks, ROWS), filtered));
  t.like(taskRows(state), { total: 40, offset: 0, pending: false });
  // A snapshot that answered an older query (sent before the last key) is still provisional.
  const stale = { ...taskQueryOf(state.tasks, ROWS), filter: 'hear' };
  t.true(taskRows(reduce(state, answered(stale, mixed))).pending);
  // Another order is pending too, until answered.
  t.true(taskRows(keys(state, { return: true }, 'o')).pending);
});

test('g groups by spawn site; Enter lists a site, Esc goes back to the sites', (t) => {
  let state = keys(live(snapshotWith(10)), '2', 'g');
  t.true(state.tasks.grouped);
  state = keys(state, { downArrow: true }, { return: true });
  t.false(state.tasks.grouped);
  t.is(state.tasks.site, 'b.c:2');
  t.is(taskQueryOf(state.tasks, ROWS).site, 'b.c:2');
  state = keys(state, { escape: true });
  t.true(state.tasks.grouped);
  t.is(state.tasks.site, null);
});

test('Enter opens the task under the cursor and keeps it fresh; o cycles the order', (t) => {
  let state = keys(live(snapshotWith(10)), '2', { downArrow: true }, { return: true });
  t.is(state.tasks.detail?.id, 2);
  const later = snapshotWith(10);
  const refreshed = { ...later, tasks: { ...later.tasks, items: later.tasks.items.map((i) => (i.id === 2 ? { ...i, polls: 7 } : i)) } };
  state = reduce(state, { type: 'snapshot', snapshot: refreshed });
  t.is(state.tasks.detail?.polls, 7);
  state = keys(state, { escape: true }, 'o');
  t.is(state.tasks.detail, null);
  t.is(taskQueryOf(state.tasks, ROWS).sort, 'age');
});

test('quit, pause, save and reclaim are intents; reclaim asks first and only where an agent is', (t) => {
  let state = live(snapshotWith(3));
  t.deepEqual(press(state, 'q').intents, [{ type: 'quit' }]);
  t.deepEqual(press(state, 'c', { ctrl: true }).intents, [{ type: 'quit' }]);
  const paused = press(state, ' ');
  t.deepEqual(paused.intents, [{ type: 'pause', paused: true }]);
  t.true(paused.state.paused);
  t.deepEqual(press(state, 's').intents, [{ type: 'save', snapshot: state.frames[0] }]);
  // Not connected through an agent yet: a notice, no question.
  t.regex(press(state, 'r').state.notice ?? '', /needs the leakscope agent/);
  state = reduce(state, { type: 'connection', connection: { state: 'connected', via: 'agent' } });
  const asked = press(state, 'r');
  t.is(asked.state.reclaim.state, 'confirm');
  t.is(asked.state.view, 'heap');
  t.deepEqual(press(asked.state, 'n').intents, []);
  t.is(press(asked.state, 'n').state.reclaim.state, 'idle');
  const yes = press(asked.state, 'y');
  t.deepEqual(yes.intents, [{ type: 'reclaim' }]);
  t.is(yes.state.reclaim.state, 'running');
});

test('a replay steps through its frames with ←/→ and never asks the agent', (t) => {
  const frames = [snapshotWith(3), snapshotWith(5), snapshotWith(8)];
  let state = reduce(initialState('replay'), { type: 'recording', snapshots: frames });
  t.is(state.frameIndex, 2, 'a replay opens on the last frame');
  state = keys(state, { leftArrow: true }, { leftArrow: true }, { leftArrow: true });
  t.is(state.frameIndex, 0);
  state = keys(state, { rightArrow: true });
  t.is(state.frameIndex, 1);
  t.deepEqual(press(state, ' ').intents, [], 'nothing to pause');
  t.regex(press(state, 'r').state.notice ?? '', /live process/);
  // The recorded page is filtered here.
  state = keys(state, '2', '/', '4', { return: true });
  t.deepEqual(
    state.frames[1]!.tasks.items.filter((i) => i.name.includes('4')).map((i) => i.id),
    [4],
  );
  t.is(taskAtCursor(state)?.id, 4);
});

test('cursors stay on rows that exist when a list shrinks', (t) => {
  let state = keys(live(snapshotWith(50)), '2', { end: true });
  t.is(state.tasks.cursor, 49);
  state = reduce(state, { type: 'snapshot', snapshot: snapshotWith(5) });
  t.is(state.tasks.cursor, 4);
});

test('number keys and Tab switch views; ? toggles help', (t) => {
  const views = (s: ConsoleState, ...inputs: (string | Partial<Key>)[]) => keys(s, ...inputs).view;
  const state = live(snapshotWith(1));
  t.is(views(state, '3'), 'threads');
  t.is(views(state, '4'), 'heap');
  t.is(views(state, { tab: true }), 'tasks');
  t.is(views(state, { tab: true, shift: true }), 'heap');
  t.true(keys(state, '?').help);
  t.false(keys(state, '?', '?').help);
  const actions: Action[] = [{ type: 'toggle-help' }, { type: 'back' }];
  t.false(actions.reduce(reduce, state).help, 'Esc closes help');
});

test('keys that arrive in one chunk are read one by one', (t) => {
  const state = live(snapshotWith(10));
  const command = commandsFor('2/heap', NO_KEY, state, ROWS);
  const after = command.actions.reduce(reduce, state);
  t.is(after.view, 'tasks');
  t.is(after.tasks.filter, 'heap', 'after /, the rest is filter text');
  t.deepEqual(commandsFor('2q', NO_KEY, state, ROWS).intents, [{ type: 'quit' }]);
});

test('Heap: the cursor moves over the allocation stacks, Enter opens and closes one; Enter on a finding goes to its stack', (t) => {
  const frame = (fn: string) => ({ address: '0x1', function: fn, file: 'a.c', line: 1, module: '/a' });
  const stack = (id: string, live: number) => ({
    id,
    site: id,
    frames: [frame(id), frame('main')],
    live_bytes: live,
    live_blocks: 1,
    allocated_bytes: live,
    allocated_blocks: 1,
    live_history: [],
  });
  const snapshot: Snapshot = {
    ...analyze(observation()),
    heap: { source: 'native', unwinder: 'dwarf', sample_bytes: 65536, stacks_total: 3, dropped: 0, stacks: [stack('a', 3), stack('b', 2), stack('c', 1)], modules: [], notes: [] },
  };
  const withFinding: Snapshot = {
    ...snapshot,
    findings: [{ id: 'heap-growth', severity: 'error', summary: '', message: '', subject: { kind: 'process', id: '1', label: '' }, value: 1, unit: 'bytes_per_s', remedy: '', stacks: ['c'] }],
  };
  let state = keys(live(snapshot), '4', 'j', 'j', 'j');
  t.is(state.heapCursor, 2, 'the cursor stops at the last allocating function');
  t.deepEqual(heapRows(state).map((r) => r.label), ['a (a.c:1)', 'b (a.c:1)', 'c (a.c:1)']);
  state = keys(state, { return: true });
  t.deepEqual(state.heapOpen, ['c (a.c:1)']);
  t.deepEqual(heapRows(state).map((r) => `${r.depth} ${r.label}`), ['0 a (a.c:1)', '0 b (a.c:1)', '0 c (a.c:1)', '1 main (a.c:1)']);
  t.deepEqual(keys(state, { return: true }).heapOpen, [], 'Enter closes it again');
  t.deepEqual(keys(state, 'k', { escape: true }).heapOpen, [], 'Esc closes all');
  state = keys(reduce(initialState('live'), { type: 'snapshot', snapshot: withFinding }), { return: true });
  t.is(state.view, 'heap');
  t.is(state.heapCursor, 2);
  t.deepEqual(state.heapOpen, ['c (a.c:1)']);
});

test('Heap: stacks that share callers merge into one tree, sized by the stacks beneath', (t) => {
  const frame = (fn: string) => ({ address: '0x1', function: fn, file: 'a.c', line: 1, module: '/a' });
  const stack = (id: string, live: number, ...fns: string[]) => ({
    id,
    site: id,
    frames: fns.map(frame),
    live_bytes: live,
    live_blocks: 1,
    allocated_bytes: live,
    allocated_blocks: 1,
    live_history: [{ t_ms: 0, live_bytes: 0 }],
  });
  const snapshot: Snapshot = {
    ...analyze(observation()),
    heap: {
      source: 'native',
      unwinder: 'dwarf',
      sample_bytes: 65536,
      stacks_total: 3,
      dropped: 0,
      stacks: [stack('x', 5, 'insert', 'handle', 'main'), stack('y', 3, 'insert', 'reload', 'main'), stack('z', 1, 'parse', 'handle', 'main')],
      modules: [],
      notes: [],
    },
  };
  const state = keys(live(snapshot), '4', { return: true });
  t.deepEqual(
    heapRows(state).map((r) => `${r.depth} ${r.label} ${r.live_bytes} +${r.grown}${r.hasCallers ? (r.open ? ' open' : ' closed') : ''}`),
    ['0 insert (a.c:1) 8 +8 open', '1 handle (a.c:1) 5 +5 closed', '1 reload (a.c:1) 3 +3 closed', '0 parse (a.c:1) 1 +1 closed'],
  );
});
