// A minimal Chrome DevTools Protocol session over the inspector's WebSocket:
// send a command, await its reply; every call is bounded in time.
import WebSocket from 'ws';
import { LeakscopeError } from '../errors.js';

interface Reply {
  id?: number;
  result?: unknown;
  error?: { message: string };
}

export class CdpSession {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      let reply: Reply;
      try {
        reply = JSON.parse(String(data)) as Reply;
      } catch {
        return;
      }
      if (reply.id === undefined) return;  // an event
      const waiter = this.waiting.get(reply.id);
      if (!waiter) return;
      this.waiting.delete(reply.id);
      if (reply.error) waiter.reject(new LeakscopeError(`inspector: ${reply.error.message}`));
      else waiter.resolve(reply.result);
    });
    socket.on('close', () => {
      for (const waiter of this.waiting.values()) waiter.reject(new LeakscopeError('the inspector closed the connection'));
      this.waiting.clear();
    });
  }

  static open(url: string, timeoutMs: number): Promise<CdpSession> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { handshakeTimeout: timeoutMs, perMessageDeflate: false });
      socket.once('open', () => resolve(new CdpSession(socket)));
      socket.once('error', (error) => reject(new LeakscopeError(`cannot open the inspector at ${url}: ${error.message}`)));
    });
  }

  send<T>(method: string, params: Record<string, unknown>, timeoutMs: number, whatTimedOut: string): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new LeakscopeError(whatTimedOut));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Resolves when the close handshake is done (or the socket is gone). */
  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.socket.terminate();
        resolve();
      }, 2000);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.close();
    });
  }
}
