// Reaching a pid: through its agent's socket when it has one, otherwise the
// /proc view. Owns the decisions about stale sockets.
import { promises as fs } from 'node:fs';
import { LeakscopeError } from '../errors.js';
import { type AgentFacts, observationFromFacts, type ReclaimResult } from '../model/agent-facts.js';
import type { Observation } from '../model/snapshot.js';
import { AgentClient, type HelloResult } from './agent-client.js';
import { procObservation } from './proc-view.js';
import { identifyTarget, isAlive, socketPath } from './target.js';

export type Connection =
  | { readonly kind: 'agent'; readonly client: AgentClient; readonly hello: HelloResult }
  | { readonly kind: 'proc'; readonly pid: number; readonly reason: string };

export interface ConnectOptions {
  readonly timeoutMs?: number;
}

async function removeStaleSocket(path: string): Promise<string> {
  try {
    await fs.unlink(path);
    return `stale agent socket ${path} removed`;
  } catch {
    return `stale agent socket ${path}`;
  }
}

export async function connect(pid: number, options: ConnectOptions = {}): Promise<Connection> {
  const target = await identifyTarget(pid);
  const path = socketPath(pid, target.uid);
  let client: AgentClient;
  try {
    client = await AgentClient.connect(path, pid, options.timeoutMs);
  } catch (error) {
    if (error instanceof LeakscopeError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'proc', pid, reason: 'no agent socket' };
    if (code === 'ECONNREFUSED') {
      if (!isAlive(pid)) throw new LeakscopeError(`no process with pid ${pid} (it exited; ${await removeStaleSocket(path)})`);
      // Alive but nobody listens: the process exec'd, or forked from one
      // with an agent. The file is a leftover either way.
      return { kind: 'proc', pid, reason: await removeStaleSocket(path) };
    }
    if (code === 'EACCES' || code === 'EPERM')
      throw new LeakscopeError(`permission denied on ${path}: run leakscope as uid ${target.uid} or as root`);
    throw new LeakscopeError(`cannot reach the agent of pid ${pid} at ${path}: ${(error as Error).message}`);
  }
  try {
    const hello = await client.hello();
    if (hello.pid !== pid) throw new LeakscopeError(`the socket for pid ${pid} is served by pid ${hello.pid}; remove ${path}`);
    return { kind: 'agent', client, hello };
  } catch (error) {
    client.close();
    throw error;
  }
}

export function disconnect(connection: Connection): void {
  if (connection.kind === 'agent') connection.client.close();
}

export async function observe(connection: Connection): Promise<Observation> {
  if (connection.kind === 'proc') return procObservation(connection.pid, connection.reason);
  const facts = await connection.client.request<AgentFacts>('snapshot');
  return observationFromFacts(facts);
}

export async function reclaim(connection: Connection): Promise<ReclaimResult> {
  if (connection.kind === 'proc')
    throw new LeakscopeError(
      `pid ${connection.pid} has no leakscope agent (${connection.reason}); reclaim runs inside the process: start it with 'leakscope run'`,
    );
  return connection.client.request<ReclaimResult>('reclaim');
}

/** Connects, runs `work`, and always disconnects. */
export async function withConnection<T>(pid: number, work: (c: Connection) => Promise<T>, options?: ConnectOptions): Promise<T> {
  const connection = await connect(pid, options);
  try {
    return await work(connection);
  } finally {
    disconnect(connection);
  }
}
