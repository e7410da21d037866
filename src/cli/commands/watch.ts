// leakscope watch: a JSON-lines recording, one snapshot per interval. The
// first line says what is recorded, the last why it ended; a target that
// exits ends the recording cleanly.
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { analyze } from '../../analysis/index.js';
import type { Thresholds } from '../../analysis/detector.js';
import { type Connection, connect, disconnect, observe, type TaskQuery } from '../../conn/attach.js';
import { hasExited, parsePid } from '../../conn/target.js';
import { LeakscopeError } from '../../errors.js';
import { WATCH_SCHEMA, type WatchEvent } from '../../model/recording.js';

export interface WatchOptions {
  readonly intervalMs: number;
  readonly count?: number;
  readonly out?: string;
  readonly thresholds: Thresholds;
  readonly tasks: TaskQuery;
}

/** Items per recorded snapshot unless --tasks says otherwise: sites carry the totals. */
export const WATCH_TASK_ITEMS = 20;

type EndReason = Extract<WatchEvent, { event: 'end' }>['reason'];

class Sink {
  private constructor(private readonly stream: NodeJS.WritableStream, private readonly file: WriteStream | null) {}

  static async open(path: string | undefined): Promise<Sink> {
    if (!path) return new Sink(process.stdout, null);
    const file = createWriteStream(path, { flags: 'w' });
    try {
      await once(file, 'open');
    } catch (error) {
      throw new LeakscopeError(`cannot write ${path}: ${(error as Error).message}`);
    }
    return new Sink(file, file);
  }

  async line(value: unknown): Promise<void> {
    if (!this.stream.write(`${JSON.stringify(value)}\n`)) await once(this.stream, 'drain');
  }

  async close(): Promise<void> {
    if (!this.file) return;
    this.file.end();
    await once(this.file, 'close');
  }
}

export async function watchCommand(pidText: string, options: WatchOptions): Promise<number> {
  const pid = parsePid(pidText);
  const query: TaskQuery = { limit: WATCH_TASK_ITEMS, ...options.tasks, idleThresholdMs: options.thresholds.idleMs };
  let connection: Connection = await connect(pid);
  const sink = await Sink.open(options.out);
  let stop: (() => void) | null = null;
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
    stop?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let taken = 0;
  const end = async (reason: EndReason, detail: string): Promise<void> => {
    const event: WatchEvent = { schema: WATCH_SCHEMA, event: 'end', pid, at: new Date().toISOString(), reason, detail, snapshots: taken };
    await sink.line(event);
  };
  try {
    await sink.line({ schema: WATCH_SCHEMA, event: 'start', pid, interval_ms: options.intervalMs, at: new Date().toISOString() });
    for (;;) {
      const started = Date.now();
      try {
        await sink.line(analyze(await observe(connection, query), options.thresholds));
        taken++;
      } catch (error) {
        if (await hasExited(pid)) {
          await end('target exited', `pid ${pid} exited after ${taken} snapshots`);
          return 0;
        }
        // Alive, but the agent went away (it exec'd, or closed us): reconnect.
        disconnect(connection);
        try {
          connection = await connect(pid);
        } catch (reconnectError) {
          if (await hasExited(pid)) {
            await end('target exited', `pid ${pid} exited after ${taken} snapshots`);
            return 0;
          }
          await end('agent lost', (reconnectError as Error).message);
          throw new LeakscopeError(`lost pid ${pid}: ${(error as Error).message}`);
        }
      }
      if (options.count !== undefined && taken >= options.count) {
        await end('count reached', `${taken} snapshots`);
        return 0;
      }
      if (!interrupted)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, started + options.intervalMs - Date.now()));
          stop = () => (clearTimeout(timer), resolve());
        });
      stop = null;
      if (interrupted) {
        await end('interrupted', `stopped by a signal after ${taken} snapshots`);
        return 0;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    disconnect(connection);
    await sink.close();
  }
}
