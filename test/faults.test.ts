// Faults, the fast cases (docs/reliability.md; `npm run soak` has the long
// ones). The target killed at each step of snapshot and reclaim, and the CLI
// killed there; clients that send garbage, a gigabyte, a thousand
// connections, or never read; targets with 2,000 threads, 100,000 short
// threads, 1,000 forks, or libraries loaded and unloaded under the hooks.
// Each time: one line of error at most, the target running on, and the
// agent serving the next client.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import test, { type ExecutionContext } from 'ava';
import { hasExited, processState } from '../src/conn/target.js';
import { CLI, FIXTURES, MiB, oneLineError, snapshotOf, startFixture, type Fixture } from './helpers/process.js';

interface Stepped {
  readonly child: ChildProcess;
  stderr(): string;
  exit(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** The CLI run with LEAKSCOPE_FAULT_STEP: resolves once it has stopped itself at `step`. */
async function stoppedAt(t: ExecutionContext, args: readonly string[], step: string): Promise<Stepped> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LEAKSCOPE_FAULT_STEP: step } });
  t.teardown(() => void child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += String(chunk)));
  child.stderr!.on('data', (chunk) => (stderr += String(chunk)));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) =>
    child.once('exit', (code) => r({ code, stdout, stderr: stderr.replace(/^leakscope: fault step .*\n/m, '') })),
  );
  const deadline = Date.now() + 20_000;
  // Said, and stopped: the line comes just before the stop, and a SIGCONT sent in between would be lost.
  while (!stderr.includes(`fault step ${step}`) || (await processState(child.pid!)) !== 'T') {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the CLI never stopped at ${step}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { child, stderr: () => stderr, exit: () => exited };
}

/** Waits until `pid` has exited (a zombie not yet reaped counts as exited). */
async function untilExited(pid: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await hasExited(pid))) {
    if (Date.now() > deadline) throw new Error(`pid ${pid} did not exit`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function rssBytes(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

const socketOf = (pid: number) => `/tmp/leakscope-${process.getuid!()}/${pid}.sock`;

/**
 * The greeting of a new client, and how long it took: the agent serves it, or
 * says it is busy. Measured on this test's event loop, so the tests that
 * judge the time are serial: a test beside them in this file (100,000
 * threads, 1,000 forks) would add its own work to what is timed.
 */
function greeting(pid: number): Promise<{ line: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolveGreeting, reject) => {
    const socket = net.createConnection(socketOf(pid));
    socket.setEncoding('utf8');
    let text = '';
    socket.on('data', (d) => {
      text += d;
      if (text.includes('\n')) {
        socket.destroy();
        resolveGreeting({ line: text.slice(0, text.indexOf('\n')), ms: performance.now() - started });
      }
    });
    socket.on('error', reject);
  });
}

const STEPS = ['connected', 'greeted', 'requested:snapshot', 'answered:snapshot'] as const;

for (const step of STEPS) {
  test(`the target killed while the CLI is at '${step}': one line, no hang`, async (t) => {
    const fixture = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { sampleInterval: 'exact' });
    const cli = await stoppedAt(t, ['snapshot', String(fixture.pid), '--json'], step);
    process.kill(fixture.pid, 'SIGKILL');
    await untilExited(fixture.pid);
    cli.child.kill('SIGCONT');
    const result = await cli.exit();
    if (step.includes(':snapshot') && result.code === 0) {
      // The request was out: the agent may have answered before it died, and the snapshot stands, taken just before the exit.
      t.is(JSON.parse(result.stdout).pid, fixture.pid);
    } else {
      oneLineError(t, result, new RegExp(`pid ${fixture.pid} exited while leakscope was taking its snapshot|no process with pid ${fixture.pid}`));
    }
  });

  test(`the CLI killed at '${step}': the target runs on and the agent serves the next client`, async (t) => {
    const fixture = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { sampleInterval: 'exact' });
    const cli = await stoppedAt(t, ['snapshot', String(fixture.pid), '--json'], step);
    cli.child.kill('SIGKILL');
    await cli.exit();
    t.true(fixture.alive());
    t.is((await snapshotOf(fixture.pid)).agent.mode, 'preload');
  });
}

test("reclaim: the target killed, then the CLI killed, at 'requested:reclaim'", async (t) => {
  const killedTarget = await startFixture<{ pid: number }>(t, 'arena_burst', ['16']);
  const cli = await stoppedAt(t, ['reclaim', String(killedTarget.pid)], 'requested:reclaim');
  process.kill(killedTarget.pid, 'SIGKILL');
  await untilExited(killedTarget.pid);
  cli.child.kill('SIGCONT');
  oneLineError(t, await cli.exit(), new RegExp(`pid ${killedTarget.pid} exited while leakscope was running its reclaim`));

  const target = await startFixture<{ pid: number }>(t, 'arena_burst', ['16']);
  const killedCli = await stoppedAt(t, ['reclaim', String(target.pid)], 'requested:reclaim');
  killedCli.child.kill('SIGKILL');
  await killedCli.exit();
  t.true(target.alive());
  t.is((await snapshotOf(target.pid)).agent.mode, 'preload');
});

/**
 * Sends `totalBytes` in pieces as fast as the agent reads them; resolves when
 * the agent or we close, with what came back and how much had been sent.
 */
function stream(pid: number, totalBytes: number, piece: Buffer): Promise<{ received: string; sent: number }> {
  return new Promise((resolveStream) => {
    const socket = net.createConnection(socketOf(pid));
    let received = '';
    let sent = 0;
    socket.setEncoding('utf8');
    socket.on('data', (d) => (received += d));
    socket.on('error', () => undefined); // the agent closes on us mid-write
    socket.on('close', () => resolveStream({ received, sent }));
    const pump = (): void => {
      while (sent < totalBytes && !socket.destroyed) {
        sent += piece.length;
        if (!socket.write(piece)) return void socket.once('drain', pump);
      }
      socket.end();
    };
    socket.on('connect', pump);
  });
}

test.serial('a client that sends a gigabyte with no newline: turned away, the target does not grow, the next client is served at once', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { sampleInterval: 'exact' });
  const before = rssBytes(fixture.pid);
  const { received, sent } = await stream(fixture.pid, 1024 * MiB, Buffer.alloc(MiB, 'x'));
  // Cut off long before the gigabyte. The error line comes first, but a write failing on the
  // closed socket can end the stream before it is read (a loaded machine): then only the cut shows.
  t.true(sent < 64 * MiB, `${sent} bytes sent before the agent closed`);
  if (received) t.regex(received, /request longer than 65536 bytes/);
  t.true(rssBytes(fixture.pid) - before < 16 * MiB, `RSS ${before} → ${rssBytes(fixture.pid)}`);
  const next = await greeting(fixture.pid);
  t.regex(next.line, /"ok":true/);
  t.true(next.ms < 1000, `${next.ms} ms`);
});

test.serial('a thousand connections at once: one is served, the others told it is busy; then the next client is served at once', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { sampleInterval: 'exact' });
  const before = rssBytes(fixture.pid);
  const sockets: net.Socket[] = [];
  const lines = await Promise.all(
    Array.from({ length: 1000 }, () =>
      new Promise<string>((resolveLine) => {
        const socket = net.createConnection(socketOf(fixture.pid));
        sockets.push(socket);
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (d) => {
          text += d;
          if (text.includes('\n')) resolveLine(text.slice(0, text.indexOf('\n')));
        });
        socket.on('error', (error) => resolveLine(`error ${(error as NodeJS.ErrnoException).code}`));
        socket.on('close', () => resolveLine(text || 'closed'));
      }),
    ),
  );
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  const served = lines.filter((l) => /"ok":true/.test(l)).length;
  const busy = lines.filter((l) => /busy: another leakscope client/.test(l)).length;
  t.is(served, 1, `served ${served}`);
  // The listen backlog may refuse some outright (EAGAIN on a Unix socket): refused, never hung.
  t.is(served + busy + lines.filter((l) => /^error /.test(l)).length, 1000, JSON.stringify([...new Set(lines.map((l) => l.slice(0, 60)))]));
  sockets.forEach((s) => s.destroy());
  await new Promise((r) => setTimeout(r, 200));
  const next = await greeting(fixture.pid);
  t.regex(next.line, /"ok":true/);
  t.true(next.ms < 1000, `${next.ms} ms`);
  t.true(rssBytes(fixture.pid) - before < 16 * MiB);
});

test.serial('a client that asks and never reads: the agent lets it go and serves the next client; the target does not grow', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'event_loop', ['--connections', '200', '--interval-ms', '1'], { sampleInterval: 'exact' });
  const before = rssBytes(fixture.pid);
  const socket = net.createConnection(socketOf(fixture.pid));
  await new Promise((r) => socket.once('connect', r));
  socket.pause(); // never reads: replies pile up in the socket until the agent's send times out
  const request = `${JSON.stringify({ v: 1, id: 1, op: 'snapshot', tasks_limit: 100000 })}\n`;
  for (let i = 0; i < 200; i++) socket.write(request.replace('"id":1', `"id":${i + 1}`));
  const deadline = Date.now() + 30_000;
  let next = await greeting(fixture.pid);
  while (!/"ok":true/.test(next.line) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    next = await greeting(fixture.pid);
  }
  t.regex(next.line, /"ok":true/, 'served once the reader that never reads is let go');
  t.true(next.ms < 1000);
  socket.destroy();
  t.true(rssBytes(fixture.pid) - before < 32 * MiB, `RSS ${before} → ${rssBytes(fixture.pid)}`);
  t.true(fixture.alive());
});

type Report = Record<string, number>;

/** attach_target's reports, the latest of each key. */
function reports(fixture: Fixture<unknown>): () => Report {
  let latest: Report = {};
  createInterface({ input: fixture.child.stdout! }).on('line', (line) => {
    if (line.startsWith('{"ops"')) latest = JSON.parse(line) as Report;
  });
  return () => latest;
}

async function until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} never happened`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('2,000 threads: a snapshot lists them all, under the preloaded agent and attached by pid', async (t) => {
  for (const withoutAgent of [false, true]) {
    const fixture = await startFixture<{ pid: number; threads: number }>(t, 'attach_target', ['--idle-threads', '2000'], { withoutAgent });
    const snapshot = await snapshotOf(fixture.pid);
    t.is(snapshot.agent.mode, withoutAgent ? 'inject' : 'preload');
    t.true(snapshot.threads.length >= 2001, `${snapshot.threads.length} threads`);
    t.true(fixture.alive());
  }
});

test('100,000 short threads started and joined under the agent, with snapshots meanwhile: all of them run, the agent stays bounded', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'attach_target', ['--churn-threads', '100000']);
  const latest = reports(fixture);
  const agentBytes: number[] = [];
  while ((latest().churned ?? 0) < 100_000) {
    const snapshot = await snapshotOf(fixture.pid);
    agentBytes.push(snapshot.process.rss_bytes);
    await new Promise((r) => setTimeout(r, 500));
  }
  t.is(latest().churned, 100_000);
  const snapshot = await snapshotOf(fixture.pid);
  t.true(snapshot.process.threads < 10, `${snapshot.process.threads} threads left`);
  // Thread records are recycled: the process's RSS after 100,000 threads is what it was after the first few thousand, give or take.
  t.true(snapshot.process.rss_bytes - agentBytes[0]! < 32 * MiB, `RSS ${agentBytes[0]} → ${snapshot.process.rss_bytes}`);
});

test('1,000 forks (each child allocating on two threads and freeing the parent\'s blocks, then an exec): none fails', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'attach_target', ['--fork-every', '1']);
  const latest = reports(fixture);
  await until(() => (latest().forks ?? 0) >= 1000, '1,000 forks', 110_000);
  t.is(latest().fork_failures, 0);
  t.is((await snapshotOf(fixture.pid)).agent.mode, 'preload');
});

test('a library loaded, hooked and unloaded over and over under an injected agent: no crash, its calls keep working', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'attach_target', ['--dl-cycle', resolve(FIXTURES, 'libdl_module.so')], { withoutAgent: true });
  const latest = reports(fixture);
  await until(() => (latest().dl_cycles ?? 0) > 10, 'the first cycles');
  // Attached, with the hooks in: the rescan finds the library loaded now and then, and it goes away under them.
  const snapshot = await snapshotOf(fixture.pid, ['--linger', '30s']);
  t.is(snapshot.agent.mode, 'inject');
  const start = latest().dl_cycles!;
  await until(() => (latest().dl_cycles ?? 0) > start + 2000, '2,000 more cycles', 60_000);
  t.is(latest().dl_failures, 0);
  t.true(fixture.alive());
  t.is((await snapshotOf(fixture.pid)).agent.mode, 'inject');
});
