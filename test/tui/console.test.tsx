// The console rendered by Ink (ink-testing-library): what each view shows of
// a snapshot, what keys do on screen, and the intents it hands out.
import '../helpers/force-color.js';
import test from 'ava';
import { render } from 'ink-testing-library';
import { analyze } from '../../src/analysis/index.js';
import type { ReclaimResult } from '../../src/model/agent-facts.js';
import type { Snapshot } from '../../src/model/snapshot.js';
import { Console, type TerminalSize } from '../../tui/Console.js';
import { ConsoleInbox } from '../../tui/inbox.js';
import type { Intent } from '../../tui/keys.js';
import { KEY } from '../helpers/keys.js';
import { type Draft, MiB, observation, site, taskItem, tasks, thread } from '../helpers/observation.js';

const SMALL: TerminalSize = { columns: 80, rows: 24 };
const LARGE: TerminalSize = { columns: 160, rows: 50 };

/** A service leaking heartbeat tasks at one site, with a sleeping loader thread. */
function leakingService(edit: (o: Draft) => void = () => {}): Snapshot {
  return analyze(
    observation((o) => {
      o.command = './service --port 8080';
      o.process.started_at = '2026-11-21T23:00:00.000Z';
      o.tasks = tasks(
        [
          site({ site: 'session.c:42', live: 3000, idle: 3000, idle_over_threshold: 3000, oldest_idle_ms: 600_000, spawned: 3000, live_bytes: 60 * MiB, poll_histogram: [5, 0, 2, 9, ...Array<number>(16).fill(0)] }),
          site({ site: 'request.c:7', kind: 'request', live: 2, running: 2, spawned: 90_000, completed: 89_998 }),
        ],
        {
          items_total: 3002,
          items_offset: 0,
          items: Array.from({ length: 64 }, (_, i) => taskItem({ id: i + 1, site: 'session.c:42', name: i === 0 ? 'hb-first' : 'heartbeat' })),
        },
      );
      o.threads = [
        thread({ tid: 100, name: 'service', cpu_ms: 5000, heap: { alloc_count: 10, allocated_bytes: 10 * MiB, free_count: 5, freed_bytes: 5 * MiB, live_bytes: 5 * MiB, remote_freed_bytes: 0, unreclaimed_bytes: 0 } }),
        thread({ tid: 101, name: 'loader', idle_ms: 120_000, start_routine: 'loader_main', creator_tid: 100, heap: { alloc_count: 10, allocated_bytes: 80 * MiB, free_count: 0, freed_bytes: 0, live_bytes: 10 * MiB, remote_freed_bytes: 70 * MiB, unreclaimed_bytes: 70 * MiB } }),
      ];
      o.allocator.arenas = [
        { index: 0, mapped_bytes: 100 * MiB, in_use_bytes: 40 * MiB, free_bytes: 60 * MiB, dirty_bytes: null, threads: null, idle_ms: null },
      ];
      edit(o);
    }),
  );
}

function mount(size: TerminalSize = SMALL, source: 'live' | 'replay' = 'live') {
  const inbox = new ConsoleInbox();
  const intents: Intent[] = [];
  const app = render(<Console source={source} inbox={inbox} onIntent={(i) => intents.push(i)} size={size} />);
  const rawFrame = (): string => app.lastFrame() ?? '';
  // eslint-disable-next-line no-control-regex
  const frame = (): string => rawFrame().replace(/\u001B\[[0-9;]*m/g, '');
  /** Polls until the frame shows `text` (React renders asynchronously). */
  const until = async (check: string | RegExp | ((frame: string) => boolean)): Promise<string> => {
    const test = typeof check === 'function' ? check : (f: string) => (typeof check === 'string' ? f.includes(check) : check.test(f));
    const deadline = Date.now() + 2000;
    while (!test(frame())) {
      if (Date.now() > deadline) throw new Error(`the console never showed ${String(check)}; it shows:\n${frame()}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return frame();
  };
  const untilIntent = async (check: (intent: Intent) => boolean): Promise<Intent> => {
    const deadline = Date.now() + 2000;
    for (;;) {
      const found = intents.filter(check).at(-1);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no such intent; got ${JSON.stringify(intents)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const press = async (...keys: string[]): Promise<void> => {
    for (const key of keys) {
      app.stdin.write(key);
      // Ink tells a lone Esc from an escape sequence by waiting for more bytes.
      await new Promise((r) => setTimeout(r, key === KEY.escape ? 60 : 10));
    }
  };
  return { app, inbox, intents, frame, rawFrame, until, untilIntent, press };
}

const lines = (frame: string): string[] => frame.split('\n');
// eslint-disable-next-line no-control-regex
const visibleWidth = (line: string): number => line.replace(/\u001B\[[0-9;]*m/g, '').length;

test('the header says who, how memory moves and the verdict; Findings shows the sentence and the remedy', async (t) => {
  const c = mount();
  c.inbox.push({ type: 'connection', connection: { state: 'connected', via: 'agent' } });
  c.inbox.push({ type: 'snapshot', snapshot: leakingService() });
  const frame = await c.until('tasks leaking');
  t.regex(frame, /leakscope \.\/service --port … · pid 100 · agent preload · glibc 2\.36 · up 60 min/, 'the command gives way at 80 columns');
  t.regex(frame, /RSS 200\.0 MiB .*live 150\.0 MiB .*tasks 3,002/);
  t.regex(frame, /tasks leaking — 3,000 tasks spawned at session\.c:42/);
  t.regex(frame, /● live/);
  // The first finding is selected: its measured sentence and what to do.
  const finding = leakingService().findings[0]!;
  t.true(frame.includes(finding.remedy.slice(0, 40)), 'the remedy is shown');
  await c.press(KEY.down);
  const second = leakingService().findings[1]!;
  await c.until(`${second.severity.toUpperCase()} ${second.id}`);
  c.app.unmount();
});

test('Tasks lists the page, filters as you type and asks the agent for it; g groups by site', async (t) => {
  const c = mount();
  c.inbox.push({ type: 'snapshot', snapshot: leakingService() });
  await c.until('tasks leaking');
  await c.press('2');
  let frame = await c.until('hb-first');
  t.regex(frame, /Tasks 3,002 live · sorted by idle/);
  t.regex(frame, /tasks 1–14 of 3,002/);
  t.truthy(await c.untilIntent((i) => i.type === 'query' && JSON.stringify(i.query) === JSON.stringify({ offset: 0, limit: 64, sort: 'idle', state: 'live' })));
  await c.press('/', 's', 'e', 's', 's');
  frame = await c.until('filter: sess');
  t.deepEqual(await c.untilIntent((i) => i.type === 'query' && i.query.filter === 'sess'), {
    type: 'query',
    query: { offset: 0, limit: 64, sort: 'idle', state: 'live', filter: 'sess' },
  });
  await c.press(KEY.enter, 'g');
  frame = await c.until('2 spawn sites');
  t.regex(frame, /session\.c:42\s+task\s+3,000\s+3,000\s+10 min\s+0 B\s+60\.0 MiB/);
  t.notRegex(frame, /request\.c:7/, 'the filter applies to sites too');
  await c.press(KEY.enter);
  frame = await c.until('site session.c:42');
  t.like(await c.untilIntent((i) => i.type === 'query' && i.query.site !== undefined), { type: 'query', query: { site: 'session.c:42', offset: 0 } });
  c.app.unmount();
});

test('paging past the loaded tasks asks for the next page and shows dots until it comes', async (t) => {
  const c = mount();
  c.inbox.push({ type: 'snapshot', snapshot: leakingService() });
  await c.until('tasks leaking');
  await c.press('2', KEY.pageDown, KEY.pageDown, KEY.pageDown, KEY.pageDown, KEY.pageDown);
  const frame = await c.until('tasks 71–84 of 3,002');
  t.true(lines(frame).some((l) => l.trim() === '…'), 'rows not loaded yet are dots');
  await c.untilIntent((i) => i.type === 'query' && i.query.offset === 50 && i.query.limit === 64);
  t.pass();
  c.app.unmount();
});

test("Enter opens a task with its site's poll times", async (t) => {
  const c = mount();
  c.inbox.push({ type: 'snapshot', snapshot: leakingService() });
  await c.until('tasks leaking');
  await c.press('2', KEY.enter);
  const frame = await c.until('Poll times at session.c:42');
  t.regex(frame, /task\s+1 hb-first/);
  t.regex(frame, /< 2 µs █+ 5/);
  t.regex(frame, /< 16 µs █+ 9/);
  t.regex(frame, /memory\s+19\.5 KiB allocated while polled, 19\.5 KiB still live/);
  c.app.unmount();
});

test('Threads puts the sleeping owner first with its unreclaimed bytes and rates from the last refresh', async (t) => {
  const c = mount(LARGE);
  const before = leakingService();
  c.inbox.push({ type: 'snapshot', snapshot: before });
  const after = leakingService((o) => {
    o.taken_at = '2026-11-22T00:00:02.000Z';
    o.threads = o.threads.map((th) => (th.tid === 100 ? { ...th, cpu_ms: 6000, heap: { ...th.heap!, allocated_bytes: 14 * MiB } } : th));
  });
  c.inbox.push({ type: 'snapshot', snapshot: after });
  await c.press('3');
  const frame = await c.until('Threads 2');
  const rows = lines(frame).filter((l) => /^\s*10[01] /.test(l));
  t.regex(rows[0]!, /101\s+loader\s+S\s+2 min\s+0%\s+0 B\s+10\.0 MiB\s+70\.0 MiB\s+70\.0 MiB\s+loader_main/);
  t.regex(rows[1]!, /100\s+service\s+S\s+0 ms\s+50%\s+2\.0 MiB\s+5\.0 MiB/);
  c.app.unmount();
});

test('reclaim: r asks, y hands out the intent, and the measured RSS drop is shown', async (t) => {
  const c = mount();
  c.inbox.push({ type: 'connection', connection: { state: 'connected', via: 'agent' } });
  c.inbox.push({ type: 'snapshot', snapshot: leakingService() });
  await c.until('tasks leaking');
  await c.press('r');
  let frame = await c.until('Run malloc_trim(0) in pid 100? y/n');
  t.regex(frame, /arena 0\s+█+▒+ 100\.0 MiB: 40\.0 MiB in use, 60\.0 MiB free/);
  await c.press('y');
  t.deepEqual(c.intents.at(-1), { type: 'reclaim' });
  await c.until('reclaiming…');
  const result: ReclaimResult = { allocator: 'glibc', action: 'malloc_trim(0)', performed: true, before_rss_bytes: 200 * MiB, after_rss_bytes: 140 * MiB, duration_ms: 12 };
  c.inbox.push({ type: 'reclaim', reclaim: { state: 'done', result } });
  frame = await c.until('malloc_trim(0): RSS');
  t.regex(frame, /RSS 200\.0 MiB → 140\.0 MiB \(−60\.0 MiB\) in 12 ms/);
  c.app.unmount();
});

test('space pauses, s saves the snapshot on screen, q quits: all as intents', async (t) => {
  const c = mount();
  const snapshot = leakingService();
  c.inbox.push({ type: 'connection', connection: { state: 'connected', via: 'agent' } });
  c.inbox.push({ type: 'snapshot', snapshot });
  await c.until('● live');
  await c.press(KEY.space);
  await c.until('paused');
  await c.press('s', 'q');
  t.deepEqual(c.intents.filter((i) => i.type !== 'query'), [{ type: 'pause', paused: true }, { type: 'save', snapshot }, { type: 'quit' }]);
  c.inbox.push({ type: 'notice', text: 'saved /tmp/x.json' });
  await c.until('saved /tmp/x.json');
  c.app.unmount();
});

test('dropped events show in red; a lost agent and an exited target are said', async (t) => {
  const c = mount();
  c.inbox.push({ type: 'snapshot', snapshot: leakingService((o) => (o.agent.dropped_events = 12)) });
  await c.until('dropped 12 events');
  t.regex(c.rawFrame(), /\u001B\[31m(\u001B\[1m)?  dropped 12 events/, 'in red');
  c.inbox.push({ type: 'connection', connection: { state: 'reconnecting', attempt: 2, retryInMs: 500, reason: 'the agent in pid 100 closed the connection' } });
  await c.until('agent lost; retry 2 in 0.5 s');
  await c.until('closed the connection');
  c.inbox.push({ type: 'connection', connection: { state: 'exited', detail: 'pid 100 exited' } });
  await c.until('pid 100 exited');
  c.app.unmount();
});

test('a replay steps through time with ←/→', async (t) => {
  const c = mount(SMALL, 'replay');
  const frames = [1, 2, 3].map((n) =>
    leakingService((o) => {
      o.taken_at = `2026-11-22T00:00:0${n}.000Z`;
      o.process.rss_bytes = n * 100 * MiB;
    }),
  );
  c.inbox.push({ type: 'recording', snapshots: frames });
  await c.until('replay 3/3 2026-11-22 00:00:03Z');
  await c.press(KEY.left, KEY.left);
  const frame = await c.until('replay 1/3');
  t.regex(frame, /RSS 100\.0 MiB/);
  t.regex(frame, /←\/→ step/);
  c.app.unmount();
});

test('every view fits 80×24 exactly and a larger terminal gets more columns', async (t) => {
  for (const size of [SMALL, LARGE]) {
    const c = mount(size);
    c.inbox.push({ type: 'snapshot', snapshot: leakingService() });
    await c.until('tasks leaking');
    for (const view of ['1', '2', '3', '4', '?']) {
      await c.press(view);
      await new Promise((r) => setTimeout(r, 30));
      const shown = lines(c.frame());
      t.is(shown.length, size.rows - 1, `view ${view} at ${size.columns}×${size.rows} is one line short of the screen`);
      t.true(shown.every((l) => visibleWidth(l) <= size.columns), `view ${view} fits ${size.columns} columns`);
    }
    await c.press('?', '2');
    const tasksFrame = await c.until('hb-first');
    t.is(tasksFrame.includes('allocated'), size === LARGE, 'allocated bytes per task only where there is room');
    c.app.unmount();
  }
});
