// Worker threads, followed from the main thread's bridge. A worker has its
// own isolate and event loop, so it needs a bridge of its own: under
// `leakscope run` the --require preload starts one in every worker; attached
// late, the main bridge puts one into each worker (those running now and
// those started while it records) through an in-process inspector session's
// NodeWorker domain: no port, no restart, and nothing waits for it (workers
// are not paused at start: a program whose main thread waits for a worker
// must not hang on leakscope).
import type { Session } from 'node:inspector';
import { adoptExistingTasks, bridgeExpression, type EvaluateReply, evaluated, type InspectorSend } from './inject-steps.cjs';

/** A worker's bootstrap is done once its script is on process.argv; until then leakscope waits. */
const READY_EXPRESSION = '(process.argv?.length ?? 0) > 1';
/**
 * An ES module entry is read and evaluated after that, through the file
 * system: while a file request is in flight, the loader's own promises are
 * pending, and a bridge started then would adopt them as the program's.
 */
const LOADING_EXPRESSION = "(process.getActiveResourcesInfo?.() ?? []).some((r) => r === 'FSReqPromise' || r === 'FSReqCallback' || r === 'CloseReq')";
/** How long leakscope waits for a worker's files to be loaded (a worker that keeps reading files gets its bridge after this). */
const LOAD_WAIT_MS = 1_000;
/** Between checks that a worker is ready, or that its bridge was started. */
const RETRY_MS = 20;
/** After this long a worker that never got ready (or whose loop never ran) is left alone. */
const GIVE_UP_MS = 10_000;
/** Where the worker's bridge puts the result of its start for the follower to read. */
const STARTED_KEY = "globalThis[Symbol.for('leakscope.worker.started')]";

interface WorkerAttached {
  sessionId: string;
  workerInfo: { workerId: string; title: string; url: string };
}

interface WorkerMessage {
  id?: number;
  result?: unknown;
  error?: { message?: string };
}

export interface WorkerFollowerFacts {
  /** Workers leakscope put a bridge into since recording began. */
  readonly joined: number;
  /** Workers it could not: not ready within GIVE_UP_MS, or an error inside. */
  readonly failed: number;
  readonly last_error: string | null;
}

export class WorkerFollower {
  private session: Session | null = null;
  private nextId = 0;
  private readonly replies = new Map<number, { sessionId: string; resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private joined = 0;
  private failed = 0;
  private lastError: string | null = null;
  /** NodeWorker.enable answered: the workers running then have been announced. */
  private enabled: Promise<void> = Promise.resolve();
  private readonly joining = new Set<Promise<void>>();

  /** `joinCall`: the bridge call (e.g. `attachWorker({...})`) a worker runs to start its bridge. */
  constructor(
    private readonly bridgePath: string,
    private readonly joinCall: () => string,
    private readonly setTimer: (callback: () => void, ms: number) => void,
  ) {}

  start(): void {
    if (this.session) return;
    let session: Session;
    try {
      const inspector = process.getBuiltinModule?.('node:inspector') ?? require('node:inspector');
      session = new inspector.Session();
      session.connect();
    } catch (error) {
      this.lastError = `no in-process inspector session: ${(error as Error).message}`;
      return;
    }
    this.session = session;
    session.on('NodeWorker.attachedToWorker', (message) => {
      const joining = this.join(message.params as WorkerAttached);
      this.joining.add(joining);
      void joining.finally(() => this.joining.delete(joining));
    });
    session.on('NodeWorker.receivedMessageFromWorker', (message) => this.received(message.params as { sessionId: string; message: string }));
    session.on('NodeWorker.detachedFromWorker', (message) => this.forget((message.params as { sessionId: string }).sessionId));
    this.enabled = new Promise((resolve) =>
      session.post('NodeWorker.enable', { waitForDebuggerOnStart: false }, (error) => {
        if (error) this.lastError = `NodeWorker.enable: ${error.message}`;
        resolve();
      }),
    );
  }

  /** Resolves once every worker announced so far has its bridge (or could not get one), or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<void> {
    // Every promise here settles before this returns: the program's promise
    // hooks see leakscope's too, and a pending one would be counted.
    let done = () => undefined as void;
    const timeout = new Promise<void>((resolve) => {
      done = resolve;
      this.setTimer(resolve, timeoutMs);
    });
    const all = (async () => {
      await this.enabled;
      await Promise.allSettled([...this.joining]);
    })();
    await Promise.race([all, timeout]);
    done();
  }

  stop(): void {
    const session = this.session;
    if (!session) return;
    this.session = null;
    for (const { reject } of this.replies.values()) reject(new Error('stopped'));
    this.replies.clear();
    // Workers' bridges stay: they follow the agent's clients themselves.
    session.post('NodeWorker.disable', () => session.disconnect());
  }

  facts(): WorkerFollowerFacts {
    return { joined: this.joined, failed: this.failed, last_error: this.lastError };
  }

  private async join(worker: WorkerAttached): Promise<void> {
    const send: InspectorSend = (method, params) => this.send(worker.sessionId, method, params);
    const fail = (message: string) => new Error(message);
    const evaluate = async <T,>(expression: string, what: string) =>
      evaluated<T>(await send<EvaluateReply>('Runtime.evaluate', { expression, returnByValue: true }), what, fail);
    try {
      const deadline = Date.now() + GIVE_UP_MS;
      while (!(await evaluate<boolean>(READY_EXPRESSION, 'checking the worker'))) await this.waitOrGiveUp(deadline, 'never finished starting');
      // Loaded: no file request in flight at two checks in a row (a module's
      // imports are read one after another), or LOAD_WAIT_MS passed.
      const loadDeadline = Date.now() + LOAD_WAIT_MS;
      for (let quiet = 0; quiet < 2 && Date.now() < loadDeadline; ) {
        quiet = (await evaluate<boolean>(LOADING_EXPRESSION, 'checking the worker')) ? 0 : quiet + 1;
        if (quiet < 2) await this.pause();
      }
      // From the worker's own loop, never from inside its bootstrap.
      await evaluate(`void setImmediate(() => { try { ${STARTED_KEY} = ${bridgeExpression(this.bridgePath, this.joinCall())}; } catch (error) { ${STARTED_KEY} = { error: String(error && error.message || error) }; } })`, 'starting the worker\'s bridge');
      let started: { error?: string; already?: boolean } | undefined;
      while (!(started = await evaluate<typeof started>(STARTED_KEY, 'reading the worker\'s bridge'))) await this.waitOrGiveUp(deadline, 'never ran its event loop');
      if (started.error) throw new Error(started.error);
      if (!started.already) await adoptExistingTasks(send, this.bridgePath, fail);
      this.joined++;
    } catch (error) {
      if ((error as Error).message === 'stopped' || (error as Error).message === 'gone') return;
      this.failed++;
      this.lastError = `${worker.workerInfo.title}: ${(error as Error).message}`;
    }
  }

  private waitOrGiveUp(deadline: number, what: string): Promise<void> {
    if (Date.now() > deadline) return Promise.reject(new Error(`${what} within ${GIVE_UP_MS} ms`));
    return this.pause();
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => this.setTimer(resolve, RETRY_MS));
  }

  private send<T>(sessionId: string, method: string, params: Record<string, unknown>): Promise<T> {
    const session = this.session;
    if (!session) return Promise.reject(new Error('stopped'));
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      this.replies.set(id, { sessionId, resolve: resolve as (value: unknown) => void, reject });
      session.post('NodeWorker.sendMessageToWorker', { sessionId, message: JSON.stringify({ id, method, params }) }, (error) => {
        if (!error) return;
        this.replies.delete(id);
        reject(new Error('gone'));
      });
    });
  }

  private received({ message }: { sessionId: string; message: string }): void {
    let parsed: WorkerMessage;
    try {
      parsed = JSON.parse(message) as WorkerMessage;
    } catch {
      return;
    }
    if (parsed.id === undefined) return; // an event: none are enabled
    const reply = this.replies.get(parsed.id);
    if (!reply) return;
    this.replies.delete(parsed.id);
    if (parsed.error) reply.reject(new Error(parsed.error.message ?? 'inspector error'));
    else reply.resolve(parsed.result);
  }

  /** The worker exited: its calls will never be answered. */
  private forget(sessionId: string): void {
    for (const [id, reply] of this.replies)
      if (reply.sessionId === sessionId) {
        this.replies.delete(id);
        reply.reject(new Error('gone'));
      }
  }
}
