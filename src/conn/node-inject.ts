// Putting leakscope's agent into a running Node process, with no restart:
// open its inspector (SIGUSR1) unless it is open already, check that the
// listener is that pid's own, load the bridge with Runtime.evaluate
// (createRequire: CommonJS and ESM programs alike), count the promises
// already pending, and close the inspector again if leakscope opened it.
import { promises as fs } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { LeakscopeError } from '../errors.js';
import { faultStep } from './fault-step.js';
import { isNodeExecutable, nodeAgentFile } from '../paths.js';
import { adoptExistingTasks, bridgeExpression, type EvaluateReply, evaluated, type InspectorSend } from '../node-agent/inject-steps.cjs';
import { CdpSession } from './cdp-session.js';
import { findInspector, type InspectorTarget, ownLoopbackListeners, portHolder } from './inspector-port.js';

export const DEFAULT_INSPECTOR_PORT = 9229;
/** How long attach waits for the bridges of the workers running at attach. */
const WORKERS_SETTLE_MS = 3000;

export interface InjectOptions {
  /** Recording goes on this long after the last client leaves. */
  readonly lingerMs?: number;
  /** For each step that waits on the target. */
  readonly timeoutMs?: number;
}

export interface InjectResult {
  readonly inspectorPort: number;
  /** The inspector was open before; it is left open. */
  readonly inspectorWasOpen: boolean;
}

/** True when `pid` runs the node binary. */
export async function isNodeProcess(pid: number): Promise<boolean> {
  try {
    return isNodeExecutable(await fs.readlink(`/proc/${pid}/exe`));
  } catch {
    return false;
  }
}

/** Checks, a second apart, that find the inspector port taken by another process before leakscope gives up. */
const PORT_TAKEN_CHECKS = 3;

function signalInspector(pid: number): void {
  try {
    process.kill(pid, 'SIGUSR1');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EPERM') throw new LeakscopeError(`permission denied signalling pid ${pid}: run leakscope as its user or as root`);
    throw new LeakscopeError(`no process with pid ${pid} (it may have exited)`);
  }
}

async function openInspector(pid: number, timeoutMs: number): Promise<InspectorTarget> {
  // Listeners from before the signal are the program's, not the inspector.
  const before = new Set((await ownLoopbackListeners(pid)).map((l) => l.port));
  signalInspector(pid);
  const started = Date.now();
  let lastCheck = started;
  let takenChecks = 0;
  while (Date.now() < started + timeoutMs) {
    const found = await findInspector(pid, DEFAULT_INSPECTOR_PORT, before);
    if (found) return found;
    // Node gives up at once when the port is taken. Another process's
    // inspector may hold it for a moment (another attach): once it is free,
    // a new signal makes Node try again. One that keeps it is an error.
    if (Date.now() - lastCheck >= 1000) {
      lastCheck = Date.now();
      const holder = await portHolder(DEFAULT_INSPECTOR_PORT, pid);
      if (holder === null) {
        takenChecks = 0;
        signalInspector(pid);
      } else if (++takenChecks >= PORT_TAKEN_CHECKS) {
        throw new LeakscopeError(
          `pid ${pid} could not open its inspector: 127.0.0.1:${DEFAULT_INSPECTOR_PORT} is taken by pid ${holder}; free that port, or start the program with 'leakscope run'`,
        );
      }
    }
    await sleep(50);
  }
  throw new LeakscopeError(
    `pid ${pid} did not open its inspector within ${timeoutMs} ms after SIGUSR1 (started with --disable-sigusr1, or not a Node.js process?)`,
  );
}

/** Loads the bridge into `pid`; the agent's socket exists when this returns. */
export async function injectNodeBridge(pid: number, options: InjectOptions = {}): Promise<InjectResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const wasOpen = await findInspector(pid, DEFAULT_INSPECTOR_PORT);
  const inspector = wasOpen ?? (await openInspector(pid, timeoutMs));
  faultStep('inspector-open');
  const session = await CdpSession.open(inspector.webSocketUrl, timeoutMs);
  const busy = `the event loop of pid ${pid} did not run leakscope's bridge within ${timeoutMs} ms (blocked in native code?)`;
  const send: InspectorSend = (method, params) => session.send(method, params, timeoutMs, busy);
  const fail = (message: string) => new LeakscopeError(message);
  const bridgePath = nodeAgentFile('bridge.cjs');
  let cannotLoad: LeakscopeError | null = null;
  try {
    const attachOptions = JSON.stringify({ closeInspector: !wasOpen, ...(options.lingerMs === undefined ? {} : { lingerMs: options.lingerMs }) });
    const attached = evaluated<{ error?: string; version?: string; already?: boolean }>(
      await send<EvaluateReply>('Runtime.evaluate', { expression: bridgeExpression(bridgePath, `attach(${attachOptions})`), returnByValue: true }),
      'loading the leakscope bridge',
      fail,
    );
    faultStep('bridge-loaded');
    if (attached?.error === 'no-loader') {
      cannotLoad = new LeakscopeError(
        `Node ${attached.version} has neither process.getBuiltinModule nor a CommonJS main module to load leakscope with (Node 20.16 or newer can be attached); start it with 'leakscope run'`,
      );
      // No bridge to close the inspector leakscope opened: the target does,
      // a moment after our session is gone (inspector.close() is _debugEnd).
      if (!wasOpen)
        await send('Runtime.evaluate', { expression: 'void setTimeout(() => process._debugEnd && process._debugEnd(), 100).unref()' });
    } else if (!attached?.already) {
      await adoptExistingTasks(send, bridgePath, fail);
      // The workers running now get their bridges from the main one: the first snapshot waits for them.
      await send('Runtime.evaluate', { expression: bridgeExpression(bridgePath, `workersSettled(${WORKERS_SETTLE_MS})`), awaitPromise: true });
    }
  } finally {
    // The bridge closes the inspector it did not find open once a client
    // reaches the agent (connect() waits for that): our session must be
    // gone first.
    await session.close();
  }
  if (cannotLoad) {
    if (!wasOpen) await waitForInspectorClosed(pid, inspector.port, timeoutMs);
    throw cannotLoad;
  }
  return {
    inspectorPort: inspector.port,
    inspectorWasOpen: wasOpen !== null,
  };
}

/** After the first client reached the agent, the bridge closes the inspector leakscope opened. */
export async function waitForInspectorClosed(pid: number, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await ownLoopbackListeners(pid)).some((l) => l.port === port)) return;
    await sleep(50);
  }
  throw new LeakscopeError(`the inspector of pid ${pid} is still open after ${timeoutMs} ms; it closes when its event loop next runs`);
}
