// leakscope attach: the live console on one pid.
import type { Thresholds } from '../../analysis/detector.js';
import { connect, type Connection, disconnect } from '../../conn/attach.js';
import { LiveFeed } from '../../conn/live-feed.js';
import { parsePid } from '../../conn/target.js';
import { ConsoleInbox } from '../../../tui/inbox.js';
import { requireTerminal, runConsole } from '../console-app.js';

export interface AttachOptions {
  readonly intervalMs: number;
  readonly thresholds: Thresholds;
  readonly saveDir: string;
  /** Shown under the view until the next notice. */
  readonly notice?: string;
}

/** Runs the console on an open connection to `pid`; closes it at the end. */
export async function consoleOn(pid: number, connection: Connection, options: AttachOptions): Promise<number> {
  const feed = new LiveFeed(pid, connection, { intervalMs: options.intervalMs, thresholds: options.thresholds });
  const inbox = new ConsoleInbox();
  if (options.notice) inbox.push({ type: 'notice', text: options.notice });
  const idleThresholdMs = options.thresholds.idleMs;
  feed.start({
    snapshot: (snapshot, query) => inbox.push({ type: 'snapshot', snapshot, query }),
    status: (connection) => inbox.push({ type: 'connection', connection }),
  });
  try {
    await runConsole('live', inbox, {
      saveDir: options.saveDir,
      query: (query) => feed.setQuery({ ...query, idleThresholdMs }),
      pause: (paused) => feed.setPaused(paused),
      reclaim: async () => {
        const result = await feed.reclaim();
        feed.refresh();
        return result;
      },
    });
  } finally {
    await feed.close();
  }
  return 0;
}

export async function attachCommand(pidText: string, options: AttachOptions): Promise<number> {
  const pid = parsePid(pidText);
  // A pid we cannot reach fails here, as one line, before any screen is drawn.
  const connection = await connect(pid);
  try {
    requireTerminal('leakscope attach');
  } catch (error) {
    disconnect(connection);
    throw error;
  }
  return consoleOn(pid, connection, options);
}
