// Putting leakscope's agent into a running native process, with no restart:
// the injector (native/src/injector, ptrace without gdb) borrows one thread
// at a safe point for about a millisecond, starts a thread of the target's
// own that loads libleakscope-inject.so, and the agent listens on its socket
// as under `leakscope run` (mode "inject"). docs/attach.md says how and what
// it cannot see.
import { execFile } from 'node:child_process';
import { LeakscopeError } from '../errors.js';
import { injectorFiles } from '../paths.js';

export interface NativeInjectOptions {
  /** The hooks stay in this long after the last client leaves. */
  readonly lingerMs?: number;
  /** How long the injector may wait for a thread at a safe point. */
  readonly timeoutMs?: number;
  /** The socket directory the agent should listen in, as the target sees it. */
  readonly socketDir?: string;
}

export interface NativeInjectResult {
  /** The thread borrowed, and where it was stopped (a system call, or "user code"). */
  readonly tid: number;
  readonly safe_point: string;
  /** How long that one thread was stopped, in microseconds. */
  readonly pause_us: number;
  /** From its release to the agent's start, in milliseconds. */
  readonly load_ms: number;
  /** The library as the target names it (in its own mount namespace). */
  readonly library: string;
}

/** The injector refused, or failed and put everything back: `code` names why (docs/attach.md). */
export class InjectRefused extends LeakscopeError {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'InjectRefused';
  }
}

/** The default stay of the hooks after the last client, as for a Node target. */
export const DEFAULT_NATIVE_LINGER_MS = 5 * 60_000;

type InjectorReply = ({ ok: true } & NativeInjectResult) | { ok: false; code: string; message: string };

export async function injectNativeAgent(pid: number, options: NativeInjectOptions = {}): Promise<NativeInjectResult> {
  const { injector, library } = injectorFiles();
  const agentOptions = [`linger_ms=${Math.max(0, Math.round(options.lingerMs ?? DEFAULT_NATIVE_LINGER_MS))}`];
  if (options.socketDir) agentOptions.push(`socket_dir=${options.socketDir}`);
  const timeoutMs = options.timeoutMs ?? 5000;
  const args = [String(pid), '--library', library, '--options', agentOptions.join(';'), '--timeout-ms', String(timeoutMs)];
  const stdout = await new Promise<string>((resolve, reject) => {
    // The injector ends on its own deadline (every stop it makes is undone
    // first); the CLI waits for it, with room for the agent's start.
    execFile(injector, args, { timeout: timeoutMs + 15_000, killSignal: 'SIGKILL' }, (error, out) => {
      if (error && !out) reject(new LeakscopeError(`the leakscope injector failed on pid ${pid}: ${error.message.split('\n')[0]}`));
      else resolve(out);
    });
  });
  const line = stdout.trim().split('\n').pop() ?? '';
  let reply: InjectorReply;
  try {
    reply = JSON.parse(line) as InjectorReply;
  } catch {
    throw new LeakscopeError(`the leakscope injector gave no answer on pid ${pid} (${line.slice(0, 80) || 'nothing'})`);
  }
  if (!reply.ok) throw new InjectRefused(reply.code, reply.message);
  return reply;
}
