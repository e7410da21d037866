// The addon's surface (native/src/node/binding.cc) and its one loader.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface HandleCount {
  readonly total: number;
  readonly active: number;
  readonly referenced: number;
}

export interface StartedAgent {
  readonly mode: 'node' | 'preload';
  readonly guest: boolean;
  /** Clients attached to the agent now. */
  readonly clients: number;
  /** The main thread's bridge is dormant: a worker joining now starts dormant too. */
  readonly dormant: boolean;
}

export interface NativeAgent {
  /** Starts (or joins a preloaded) agent; `collect` gives the bridge's part of a snapshot as JSON. */
  start(collect: (delayMs: number) => string, clients: (attached: boolean) => void, answerTimeoutMs: number): StartedAgent;
  /** On a worker thread: joins the agent the main thread started; its `collect` answers for this worker's loop. */
  join(collect: (delayMs: number) => string, clients: (attached: boolean) => void, answerTimeoutMs: number, threadId: number): StartedAgent;
  /**
   * Heap hooks in the loaded objects' GOT (native/src/node/got_hooks.h), for
   * the addon's own agent: on, they go into every object loaded now (and the
   * ledger restarts when they were out); off, they come out.
   */
  heapHooks(on: true): { objects: number; entries: number };
  heapHooks(on: false): undefined;
  /** The main thread's bridge went dormant or woke (for workers that start meanwhile). */
  setDormant(dormant: boolean): void;
  /** A task in the agent's registry; 0 when it is not tracked. */
  spawn(kind: string, name: string | null, site: string, parentId: number, waiting: boolean, weightLog2: number): number;
  pollBegin(id: number): void;
  pollEnd(id: number): void;
  complete(id: number): void;
  /** This thread's libuv handles by type. */
  uvHandles(): Record<string, HandleCount>;
  /** Tids of libuv's threadpool (blocks the loop up to timeoutMs; starts the pool if unused). */
  threadpoolTids(threads: number, timeoutMs: number): number[];
  /** The agent's gauges as JSON (native/src/core/agent.h, agent_copy_gauges); null before start. */
  gauges(idleThresholdMs: number): string | null;
  /** The calling thread's CPU time in ms (CLOCK_THREAD_CPUTIME_ID); -1 if the clock is not there. */
  threadCpuMs(): number;
}

/** dist/src/node-agent → the package root is three levels up. */
export const PACKAGE_ROOT = resolve(__dirname, '..', '..', '..');

/** leakscope's version, as its package.json says. */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(resolve(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function loadNativeAgent(): NativeAgent {
  const candidates = [process.env.LEAKSCOPE_NODE_ADDON, resolve(PACKAGE_ROOT, 'build/lib/leakscope.node')].filter(
    (p): p is string => !!p,
  );
  const errors: string[] = [];
  for (const path of candidates) {
    if (!existsSync(path)) {
      errors.push(`${path}: not found`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(path) as NativeAgent;
    } catch (error) {
      errors.push(`${path}: ${(error as Error).message}`);
    }
  }
  throw new Error(`leakscope: cannot load the Node addon (${errors.join('; ')}); run 'npm install' in leakscope`);
}
