// The protocol client: newline-delimited JSON requests and replies over the
// agent's Unix socket (docs/protocol.md). One request in flight at a time;
// every failure becomes a one-line LeakscopeError.
import net from 'node:net';
import { LeakscopeError } from '../errors.js';
import { faultStep } from './fault-step.js';

export const PROTOCOL_VERSION = 1;
const MAX_REPLY_BYTES = 256 * 1024 * 1024;

export type AgentOp = 'hello' | 'snapshot' | 'tasks' | 'reclaim';

/** Flat request fields beside v, id and op (docs/protocol.md). */
export type RequestParams = Readonly<Record<string, string | number>>;

export interface HelloResult {
  pid: number;
  mode: string;
  agent_version: string;
  sample_interval_bytes: number;
  started_ms: number;
}

interface Pending {
  resolve: (line: string) => void;
  reject: (error: LeakscopeError) => void;
}

export class AgentClient {
  private buffered = '';
  private pending: Pending | null = null;
  private closedError: LeakscopeError | null = null;
  private nextId = 1;
  private readonly greeting: Promise<string>;

  private constructor(
    private readonly socket: net.Socket,
    readonly pid: number,
    private readonly timeoutMs: number,
  ) {
    this.greeting = this.awaitLine('the greeting');
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (error) => this.fail(new LeakscopeError(`connection to the agent in pid ${pid} failed: ${error.message}`)));
    socket.on('close', () =>
      this.fail(new LeakscopeError(`the agent in pid ${pid} closed the connection (did the process exit?)`)),
    );
  }

  /** Connects; rejects with the socket error's code kept in `cause`. */
  static connect(path: string, pid: number, timeoutMs = 5000): Promise<AgentClient> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new LeakscopeError(`the agent socket of pid ${pid} did not accept within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        const client = new AgentClient(socket, pid, timeoutMs);
        faultStep('connected');
        resolve(client);
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /** The agent's first line: who it is, or why it turned us away. */
  async hello(): Promise<HelloResult> {
    const hello = parseReply<HelloResult>(await this.greeting, null, this.pid);
    faultStep('greeted');
    return hello;
  }

  async request<T>(op: AgentOp, params: RequestParams = {}): Promise<T> {
    await this.greeting;
    if (this.closedError) throw this.closedError;
    if (this.pending) throw new LeakscopeError('internal: one request at a time');
    const id = this.nextId++;
    const reply = this.awaitLine(`'${op}'`);
    this.socket.write(`${JSON.stringify({ ...params, v: PROTOCOL_VERSION, id, op })}\n`);
    faultStep(`requested:${op}`);
    const result = parseReply<T>(await reply, id, this.pid);
    faultStep(`answered:${op}`);
    return result;
  }

  private awaitLine(what: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = null;
        reject(new LeakscopeError(`the agent in pid ${this.pid} did not answer ${what} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending = {
        resolve: (text) => (clearTimeout(timer), resolve(text)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
    });
  }

  close(): void {
    this.closedError ??= new LeakscopeError('connection closed');
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    if (this.buffered.length > MAX_REPLY_BYTES) {
      this.fail(new LeakscopeError(`the agent in pid ${this.pid} sent a reply over ${MAX_REPLY_BYTES} bytes`));
      this.socket.destroy();
      return;
    }
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline);
      this.buffered = this.buffered.slice(newline + 1);
      const pending = this.pending;
      this.pending = null;
      pending?.resolve(line);
    }
  }

  private fail(error: LeakscopeError): void {
    this.closedError ??= error;
    const pending = this.pending;
    this.pending = null;
    pending?.reject(this.closedError);
  }
}

/** `id` null: the greeting, which answers no request. */
export function parseReply<T>(line: string, id: number | null, pid: number): T {
  let reply: unknown;
  try {
    reply = JSON.parse(line);
  } catch {
    throw new LeakscopeError(`the agent in pid ${pid} sent a malformed reply (${line.length} bytes that are not JSON)`);
  }
  if (typeof reply !== 'object' || reply === null) throw new LeakscopeError(`the agent in pid ${pid} sent a reply that is not an object`);
  const r = reply as { v?: unknown; id?: unknown; ok?: unknown; error?: unknown; result?: unknown };
  if (r.v !== PROTOCOL_VERSION)
    throw new LeakscopeError(`the agent in pid ${pid} speaks protocol v${String(r.v)}; this leakscope speaks v${PROTOCOL_VERSION}`);
  if (r.ok !== true) throw new LeakscopeError(`pid ${pid}: ${typeof r.error === 'string' ? r.error : 'the agent refused the request'}`);
  if ((r.id ?? null) !== id) throw new LeakscopeError(`the agent in pid ${pid} answered request ${String(r.id)}, expected ${id}`);
  if (typeof r.result !== 'object' || r.result === null) throw new LeakscopeError(`the agent in pid ${pid} sent a reply without a result`);
  return r.result as T;
}
