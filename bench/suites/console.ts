// The console suite, on a target with 100,000 live tasks and 200 threads.
// (1) Keystroke to redrawn frame: the real console (Ink, the live feed, the
// agent) in this process, writing to an 80×24 screen in memory; the time from
// a key to the first frame that shows its effect. (2) An idle console's CPU:
// `leakscope attach` in a real terminal (tmux) at 1 Hz for a while, its own
// CPU time over wall time, on this target and on a small one side by side.
import { execFileSync, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import chalk from 'chalk';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { connect } from '../../src/conn/attach.js';
import { LiveFeed } from '../../src/conn/live-feed.js';
import { loadConsole, RENDER_OPTIONS } from '../../src/cli/console-app.js';
import { agentLibraryPath, PACKAGE_ROOT } from '../../src/paths.js';
import { ConsoleInbox } from '../../tui/inbox.js';
import { measuredOn, median, writeSection } from '../page.js';

const MANY_TASKS = resolve(PACKAGE_ROOT, 'build/bench/many_tasks');
const EVENT_LOOP = resolve(PACKAGE_ROOT, 'build/fixtures/event_loop');
const CLI = resolve(PACKAGE_ROOT, 'bin/leakscope.js');
const WORKERS = 200;
const LIVE_TASKS = 100_000;
const SITES = 100;
const KEY_ROUNDS = Number(process.env.BENCH_KEY_ROUNDS ?? 15);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 30);
const BUDGET_MS = 100;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// eslint-disable-next-line no-control-regex
const plain = (text: string): string => text.replace(/\u001B\[[0-9;?]*[A-Za-z]/g, '');

/** An 80×24 terminal in memory that remembers when each frame came. */
class Screen extends EventEmitter {
  readonly columns = 80;
  readonly rows = 24;
  readonly isTTY = true;
  last = '';
  /** Ink writes a frame with its erase sequences in one write; cursor and sync markers come alone. */
  write = (chunk: string): boolean => {
    if (plain(chunk).trim() === '') return true;
    this.last = chunk;
    this.emit('frame', chunk);
    return true;
  };
}

/** A keyboard Ink can read (the shape of ink-testing-library's). */
class Keyboard extends EventEmitter {
  readonly isTTY = true;
  private pending: string | null = null;
  type(data: string): void {
    this.pending = data;
    this.emit('readable');
    this.emit('data', data);
  }
  read = (): string | null => {
    const data = this.pending;
    this.pending = null;
    return data;
  };
  setEncoding(): void {}
  setRawMode(): void {}
  resume(): void {}
  pause(): void {}
  ref(): void {}
  unref(): void {}
}

function startTarget(program: string, args: readonly string[]) {
  const child = spawn(program, args, { env: { ...process.env, LD_PRELOAD: agentLibraryPath() }, stdio: ['pipe', 'pipe', 'ignore'] });
  return new Promise<{ pid: number; stop: () => void }>((resolveReady, reject) => {
    child.stdout!.once('data', () => resolveReady({ pid: child.pid!, stop: () => child.kill('SIGKILL') }));
    child.once('exit', (code) => reject(new Error(`${program} exited (${code})`)));
  });
}

interface KeyTiming {
  readonly what: string;
  readonly ms: number[];
}

async function keystrokes(pid: number): Promise<KeyTiming[]> {
  const connection = await connect(pid);
  const feed = new LiveFeed(pid, connection, { intervalMs: 1000, thresholds: DEFAULT_THRESHOLDS });
  const inbox = new ConsoleInbox();
  feed.start({ snapshot: (snapshot, query) => inbox.push({ type: 'snapshot', snapshot, query }), status: (c) => inbox.push({ type: 'connection', connection: c }) });
  // Colours as on a terminal: the cursor's row is found by its inverse video.
  chalk.level = 1;
  const screen = new Screen();
  const keyboard = new Keyboard();
  const { render, createElement, Console } = await loadConsole();
  const app = render(
    createElement(Console, {
      source: 'live',
      inbox,
      onIntent: (intent) => {
        if (intent.type === 'query') feed.setQuery(intent.query);
      },
    }),
    { ...RENDER_OPTIONS, stdout: screen as unknown as NodeJS.WriteStream, stdin: keyboard as unknown as NodeJS.ReadStream },
  );
  /** Types `key` and waits for the first frame for which `shows` holds. */
  const time = async (key: string, shows: (frame: string) => boolean): Promise<number> => {
    const started = performance.now();
    const seen = new Promise<number>((resolveSeen, reject) => {
      const timer = setTimeout(() => reject(new Error(`no frame showed the effect of ${JSON.stringify(key)}:\n${plain(screen.last)}`)), 10_000);
      const onFrame = (frame: string): void => {
        if (!shows(frame)) return;
        clearTimeout(timer);
        screen.off('frame', onFrame);
        resolveSeen(performance.now() - started);
      };
      screen.on('frame', onFrame);
    });
    keyboard.type(key);
    return seen;
  };
  const until = async (shows: (frame: string) => boolean): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (!shows(screen.last)) {
      if (Date.now() > deadline) throw new Error(`the console never got ready:\n${plain(screen.last)}`);
      await sleep(20);
    }
  };
  /** Which screen line the cursor's row is on (drawn inverse; above line 6 is the tab bar's). */
  const selectedLine = (frame: string): number =>
    frame
      .split('\n')
      .findIndex((line, index) => index >= 6 && line.includes('\u001B[7m'));
  const shows = (pattern: RegExp) => (frame: string) => pattern.test(plain(frame));
  const loaded = (frame: string) => !plain(frame).split('\n').some((l) => l.trim() === '…');
  try {
    await until(shows(/tasks 100,000/));
    const timings: KeyTiming[] = [
      { what: '`2`: switch to the Tasks view', ms: [] },
      { what: '`↓`: move the cursor inside the loaded page', ms: [] },
      { what: '`PgDn` ×5: past the loaded page (the agent sorts 100,000 tasks for the next)', ms: [] },
      { what: '`g`: group by spawn site', ms: [] },
      { what: '`/` then `x`: filter (the agent filters 100,000 tasks)', ms: [] },
    ];
    const [view, down, page, group, filter] = timings as [KeyTiming, KeyTiming, KeyTiming, KeyTiming, KeyTiming];
    for (let round = 0; round < KEY_ROUNDS; round++) {
      view.ms.push(await time('2', (f) => shows(/Tasks 100,000 live · sorted by idle/)(f) && shows(/tasks 1–14 of/)(f) && loaded(f)));
      const first = selectedLine(screen.last);
      down.ms.push(await time('\u001B[B', (f) => selectedLine(f) === first + 1));
      // Five pages down: rows 71–84 lie past the first 64 loaded, so they come from the agent.
      for (let k = 0; k < 4; k++) keyboard.type('\u001B[6~');
      page.ms.push(await time('\u001B[6~', (f) => shows(/tasks 71–84 of 100,000/)(f) && loaded(f)));
      group.ms.push(await time('g', shows(/100 spawn sites/)));
      await time('g', shows(/sorted by idle/));
      await time('/', shows(/filter:/));
      filter.ms.push(await time('x', (f) => shows(/filter: x/)(f) && shows(/No live task matches/)(f)));
      await time('\u001B', (f) => !plain(f).includes('filter: ') && !plain(f).includes('No live task matches'));
      await time('\u001B[H', (f) => shows(/tasks 1–14 of/)(f) && loaded(f));
      await time('1', shows(/severity|No findings/));
      process.stderr.write(`keys round ${round + 1}/${KEY_ROUNDS}\n`);
    }
    return timings;
  } finally {
    app.unmount();
    await feed.close();
  }
}

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** `leakscope attach` in tmux, left alone for a while: its CPU over wall time, in percent of one core. */
async function idleCpu(pid: number): Promise<number> {
  const session = `leakscope-bench-${process.pid}`;
  execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '80', '-y', '24', `exec ${process.execPath} ${CLI} attach ${pid}`]);
  try {
    const consolePid = Number(execFileSync('tmux', ['display-message', '-p', '-t', session, '#{pane_pid}'], { encoding: 'utf8' }).trim());
    await sleep(5000); // started, connected, first frames drawn
    const cpu0 = cpuMs(consolePid);
    const t0 = performance.now();
    await sleep(IDLE_SECONDS * 1000);
    const cpu1 = cpuMs(consolePid);
    const screen = execFileSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' });
    if (!screen.includes('● live')) throw new Error(`the console was not live:\n${screen}`);
    return ((cpu1 - cpu0) / (performance.now() - t0)) * 100;
  } finally {
    execFileSync('tmux', ['kill-session', '-t', session]);
  }
}

export async function runConsoleSuite(): Promise<void> {
  const big = await startTarget(MANY_TASKS, [String(WORKERS), String(LIVE_TASKS), String(SITES)]);
  const small = await startTarget(EVENT_LOOP, ['--connections', '20', '--interval-ms', '50', '--forever']);
  try {
    await sleep(2500);
    const timings = await keystrokes(big.pid);
    const idleBig = await idleCpu(big.pid);
    const idleSmall = await idleCpu(small.pid);
    const worst = Math.max(...timings.flatMap((t) => t.ms));
    const fmt = (values: number[]) => `${median(values).toFixed(1)} ms | ${Math.max(...values).toFixed(1)} ms`;
    const body = [
      measuredOn('npm run bench -- console'),
      '',
      `Target: \`build/bench/many_tasks ${WORKERS} ${LIVE_TASKS} ${SITES}\` under the agent (${LIVE_TASKS.toLocaleString('en-US')} live tasks, ${WORKERS} threads, ${SITES} sites). Keystrokes: the console (Ink, the live feed, the agent's socket) in the benchmark's process on an 80×24 screen in memory, refreshing at 1 Hz meanwhile; time from the key to the first frame showing its effect, ${KEY_ROUNDS} rounds. The console draws at most ${RENDER_OPTIONS.maxFps} frames a second, so up to ${Math.ceil(1000 / RENDER_OPTIONS.maxFps)} ms of each figure is frame pacing.`,
      '',
      '| keystroke | median | max |',
      '|---|---|---|',
      ...timings.map((t) => `| ${t.what} | ${fmt(t.ms)} |`),
      '',
      `Budget: a keystroke redraws within ${BUDGET_MS} ms with 100,000 tasks → ${worst <= BUDGET_MS ? 'met' : 'NOT MET'} (worst ${worst.toFixed(0)} ms).`,
      '',
      `Idle: \`leakscope attach <pid>\` in a real 80×24 terminal (tmux), refreshing at 1 Hz, left alone for ${IDLE_SECONDS} s; its CPU time (user + system) over wall time.`,
      '',
      '| target | console CPU, % of one core |',
      '|---|---|',
      `| many_tasks, ${LIVE_TASKS.toLocaleString('en-US')} live tasks | ${idleBig.toFixed(2)} % |`,
      `| event_loop fixture, a few hundred tasks | ${idleSmall.toFixed(2)} % |`,
      '',
      `Budget: an idle console under 5 % of a core → ${Math.max(idleBig, idleSmall) < 5 ? 'met' : 'NOT MET'}.`,
    ].join('\n');
    writeSection('console', body);
    process.stdout.write(`${body}\n`);
  } finally {
    big.stop();
    small.stop();
  }
}
