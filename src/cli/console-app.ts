// Runs the Ink console on this terminal and carries out its intents. The
// console renders; this file does the I/O: it feeds snapshots in, saves
// files, runs reclaim, and exits from one place.
import { promises as fs } from 'node:fs';
import { resolve } from 'node:path';
import { LeakscopeError } from '../errors.js';
import type { TaskQuery } from '../conn/attach.js';
import type { ReclaimResult } from '../model/agent-facts.js';
import type { Snapshot } from '../model/snapshot.js';
import type { ConsoleInbox } from '../../tui/inbox.js';
import type { Intent } from '../../tui/keys.js';

export interface ConsoleHandlers {
  readonly query?: (query: TaskQuery) => void;
  readonly pause?: (paused: boolean) => void;
  readonly reclaim?: () => Promise<ReclaimResult>;
  /** Where `s` saves snapshots. */
  readonly saveDir: string;
}

const ENTER_ALTERNATE_SCREEN = '\u001b[?1049h';
const LEAVE_ALTERNATE_SCREEN = '\u001b[?1049l';

/**
 * How Ink draws the console: q is ours to handle, nothing else writes to the
 * screen, and frames are paced at up to 60 a second (at Ink's 30, a page the
 * agent had already sent waited up to 33 ms). Frames come from keys and
 * refreshes, not a timer, so the pace is a ceiling, not a cost.
 */
export const RENDER_OPTIONS = { exitOnCtrlC: false, patchConsole: false, maxFps: 60 } as const;

/** Variables that make Ink believe it runs under CI. */
const CI_MARKERS = ['CI', 'CONTINUOUS_INTEGRATION'] as const;

/**
 * Ink and the console, loaded for a real terminal. Ink decides once, when it
 * is loaded, whether it runs under CI (a CI or CONTINUOUS_INTEGRATION
 * variable) and then draws only the last frame, which leaves an interactive
 * console blank. The console runs only on a terminal, so Ink is loaded with
 * those variables hidden; they are put back at once, so commands the target
 * or `run` starts still see them. React is loaded as its production build
 * unless NODE_ENV says otherwise. Loading here, not at start-up, also keeps
 * React out of the scripted commands.
 */
export async function loadConsole() {
  const saved = [...CI_MARKERS, 'NODE_ENV'].map((name) => [name, process.env[name]] as const);
  for (const name of CI_MARKERS) delete process.env[name];
  // React's development build checks every render and times each component; unless asked for, load the production one.
  process.env.NODE_ENV ??= 'production';
  try {
    const [{ render }, { createElement }, { Console }] = await Promise.all([import('ink'), import('react'), import('../../tui/Console.js')]);
    return { render, createElement, Console };
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/** The console needs a keyboard: refuse early, with what to use instead. */
export function requireTerminal(command: string): void {
  if (!process.stdin.isTTY || !process.stdout.isTTY)
    throw new LeakscopeError(`${command} is interactive and needs a terminal; in scripts use 'leakscope snapshot --json' or 'leakscope watch'`);
}

function stamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

async function save(snapshot: Snapshot, dir: string): Promise<string> {
  const path = resolve(dir, `leakscope-${snapshot.pid}-${stamp(new Date(snapshot.taken_at))}.json`);
  await fs.writeFile(path, `${JSON.stringify(snapshot, null, 2)}\n`);
  return path;
}

/** Shows the console until the user quits (or `stop` is called); resolves then. */
export async function runConsole(
  source: 'live' | 'replay',
  inbox: ConsoleInbox,
  handlers: ConsoleHandlers,
  onReady?: (stop: () => void) => void,
): Promise<void> {
  const { render, createElement, Console } = await loadConsole();
  process.stdout.write(ENTER_ALTERNATE_SCREEN);
  let instance: ReturnType<typeof render> | null = null;
  const stop = (): void => instance?.unmount();
  const onIntent = (intent: Intent): void => {
    switch (intent.type) {
      case 'quit':
        stop();
        return;
      case 'query':
        handlers.query?.(intent.query);
        return;
      case 'pause':
        handlers.pause?.(intent.paused);
        return;
      case 'save':
        save(intent.snapshot, handlers.saveDir).then(
          (path) => inbox.push({ type: 'notice', text: `saved ${path}` }),
          (error: Error) => inbox.push({ type: 'notice', text: `could not save: ${error.message}` }),
        );
        return;
      case 'reclaim':
        if (!handlers.reclaim) return;
        handlers.reclaim().then(
          (result) => inbox.push({ type: 'reclaim', reclaim: { state: 'done', result } }),
          (error: Error) => inbox.push({ type: 'reclaim', reclaim: { state: 'failed', message: error.message } }),
        );
        return;
    }
  };
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) process.once(signal, stop);
  try {
    instance = render(createElement(Console, { source, inbox, onIntent }), RENDER_OPTIONS);
    onReady?.(stop);
    await instance.waitUntilExit();
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGHUP', stop);
    process.stdout.write(LEAVE_ALTERNATE_SCREEN);
  }
}
