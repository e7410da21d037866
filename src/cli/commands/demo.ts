// leakscope demo: starts the bundled event-loop fixture (it leaks one
// heartbeat task per connection) under the agent and attaches the console to
// it; quitting stops the fixture.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Thresholds } from '../../analysis/detector.js';
import { connect, type Connection, disconnect } from '../../conn/attach.js';
import { LeakscopeError } from '../../errors.js';
import { fixturePath } from '../../paths.js';
import { requireTerminal } from '../console-app.js';
import { consoleOn } from './attach.js';
import { runEnvironment } from './run.js';

/** The demo's tasks count as idle sooner than a service's would: a newcomer should not wait 30 s. */
export const DEMO_IDLE_THRESHOLD_MS = 10_000;
const AGENT_WAIT_MS = 5000;

async function agentOf(child: ChildProcess, pid: number): Promise<Connection> {
  const deadline = Date.now() + AGENT_WAIT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new LeakscopeError(`the demo program exited at start (${child.exitCode ?? child.signalCode})`);
    const connection = await connect(pid).catch(() => null);
    if (connection?.kind === 'agent') return connection;
    if (connection) disconnect(connection);
    if (Date.now() > deadline) throw new LeakscopeError(`the agent in the demo program (pid ${pid}) did not answer within ${AGENT_WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

export async function demoCommand(options: { readonly intervalMs: number; readonly saveDir: string; readonly thresholds?: Thresholds }): Promise<number> {
  requireTerminal('leakscope demo');
  const program = fixturePath('event_loop');
  const child = spawn(program, ['--forever'], {
    stdio: 'ignore',
    env: runEnvironment({ allocator: 'glibc', followExec: false, quiet: true }),
  });
  try {
    await once(child, 'spawn');
    const pid = child.pid!;
    const connection = await agentOf(child, pid);
    return await consoleOn(pid, connection, {
      intervalMs: options.intervalMs,
      thresholds: options.thresholds ?? { idleMs: DEMO_IDLE_THRESHOLD_MS },
      saveDir: options.saveDir,
      notice: `demo: event_loop (pid ${pid}) leaks one heartbeat task per connection · 2 shows them, g groups by site · q quits and stops it`,
    });
  } finally {
    await stopChild(child);
  }
}
