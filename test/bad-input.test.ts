// Bad input of every kind: one line on stderr, a non-zero exit, and the
// target unharmed.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { CLI, isAlive, NODE_FIXTURES, oneLineError, runCli, snapshotOf, startFixture } from './helpers/process.js';


/** A live process with no agent in it. */
function sleeper(t: ExecutionContext): number {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  return child.pid!;
}

function rawExchange(path: string, payload: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path);
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => (received += d));
    socket.on('error', reject);
    socket.on('close', () => resolve(received.slice(received.indexOf('\n') + 1)));
    socket.on('connect', () => {
      socket.write(payload);
      setTimeout(() => socket.end(), 300);
    });
  });
}

test('a dead pid', async (t) => {
  const child = spawn('true');
  await new Promise((r) => child.once('exit', r));
  oneLineError(t, await runCli(['snapshot', String(child.pid)]), /no process with pid \d+/);
});

test('not a pid at all', async (t) => {
  oneLineError(t, await runCli(['snapshot', 'abc']), /'abc' is not a process id/);
  oneLineError(t, await runCli(['snapshot', '--idle-threshold', 'soon', '1']), /duration/);
});

test('a pid without an agent, with --no-inject, gets a labelled /proc snapshot, and reclaim says why it cannot', async (t) => {
  const pid = sleeper(t);
  const snapshot = await snapshotOf(pid, ['--no-inject']);
  t.is(snapshot.agent.mode, 'proc');
  t.is(snapshot.allocator.live_bytes, null);
  t.is(snapshot.threads.length, 1);
  t.regex(snapshot.agent.notes.join(' '), /no agent .*\/proc view only/);
  const report = await runCli(['snapshot', String(pid), '--no-inject']);
  t.regex(report.stdout, /agent: none \(\/proc view only\)/);
  oneLineError(t, await runCli(['reclaim', String(pid), '--no-inject']), /has no leakscope agent .*without --no-inject.*'leakscope run'/);
  t.true(isAlive(pid));
});

test('a stale socket file is removed and, with --no-inject, the pid falls back to /proc', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'leakscope-stale-'));
  const pid = sleeper(t);
  const path = join(dir, `${pid}.sock`);
  // A socket file nobody listens on: bound, then the listener is gone.
  await new Promise<void>((resolve) => {
    const python = spawn('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)})`]);
    python.once('exit', () => resolve());
  });
  t.true(existsSync(path));
  const result = await runCli(['snapshot', String(pid), '--json', '--no-inject'], { env: { LEAKSCOPE_SOCKET_DIR: dir } });
  t.is(result.code, 0, result.stderr);
  const snapshot = JSON.parse(result.stdout);
  t.is(snapshot.agent.mode, 'proc');
  t.regex(snapshot.agent.notes[0], /stale agent socket .* removed/);
  t.false(existsSync(path));
});

/** A fake agent for `pid`: greets properly, then answers every request with `reply`. */
async function fakeAgent(t: ExecutionContext, pid: number, reply: (socket: net.Socket) => void): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'leakscope-fake-'));
  const server = net.createServer((socket) => {
    socket.write(`${JSON.stringify({ v: 1, id: null, ok: true, result: { pid, mode: 'preload', agent_version: 'fake', protocol: 1, sample_interval_bytes: 0, started_ms: 0 } })}\n`);
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += String(chunk);
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const request = JSON.parse(line) as { id: number; op: string };
        if (request.op !== 'hello') reply(socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(join(dir, `${pid}.sock`), resolve));
  t.teardown(() => server.close());
  return dir;
}

test('a garbled reply from the agent', async (t) => {
  const pid = sleeper(t);
  const dir = await fakeAgent(t, pid, (s) => s.write('{"v":1,"id":2,"ok":tru\n'));
  oneLineError(t, await runCli(['snapshot', String(pid)], { env: { LEAKSCOPE_SOCKET_DIR: dir } }), /malformed reply/);
});

test('a reply cut short when the target exits mid-snapshot', async (t) => {
  const pid = sleeper(t);
  const dir = await fakeAgent(t, pid, (s) => s.end('{"v":1,"id":2,"ok":true,"result":{"pid":'));
  oneLineError(t, await runCli(['snapshot', String(pid)], { env: { LEAKSCOPE_SOCKET_DIR: dir } }), /closed the connection/);
});

test('an agent that never answers', async (t) => {
  const pid = sleeper(t);
  const dir = await fakeAgent(t, pid, () => {});
  oneLineError(t, await runCli(['snapshot', String(pid)], { env: { LEAKSCOPE_SOCKET_DIR: dir } }), /did not answer 'snapshot' within/);
});

test('garbled, truncated and oversized requests get errors and leave the target serving', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { sampleInterval: 'exact' });
  const path = `/tmp/leakscope-${process.getuid!()}/${fixture.pid}.sock`;
  t.regex(await rawExchange(path, 'hello there\n'), /"ok":false,"error":"malformed request: request is not a JSON object"/);
  t.regex(await rawExchange(path, '{"v":1,"op":"snap\n'), /"ok":false,"error":"malformed request: unterminated string/);
  t.regex(await rawExchange(path, '{"v":1,"op":{"x":1}}\n'), /nested values are not accepted/);
  t.regex(await rawExchange(path, '{"v":2,"id":5,"op":"snapshot"}\n'), /"id":5,"ok":false,"error":"unsupported protocol version/);
  t.regex(await rawExchange(path, '{"v":1,"id":6,"op":"format-disk"}\n'), /unknown op 'format-disk'/);
  t.regex(await rawExchange(path, '{"v":1,"id":8,"op":"snapshot","tasks_sort":"bogus"}\n'), /"id":8,"ok":false,"error":"tasks_sort must be one of/);
  t.regex(await rawExchange(path, '{"v":1,"id":9,"op":"tasks","tasks_limit":-1}\n'), /"id":9,"ok":false,"error":"tasks_limit must be a whole number/);
  t.regex(await rawExchange(path, '{"v":1,"id":10,"op":"tasks","idle_threshold_ms":1.5}\n'), /idle_threshold_ms must be a whole number/);
  t.regex(await rawExchange(path, Buffer.alloc(70 * 1024, 'x')), /request longer than 65536 bytes/);
  t.regex(await rawExchange(path, Buffer.from([0xff, 0x00, 0xfe, 0x0a])), /malformed request/);
  // Cut off mid-request: the agent waits for the rest, then sees the client go.
  t.is(await rawExchange(path, '{"v":1,"id":7,"op":"snapsh'), '');
  t.true(fixture.alive());
  const snapshot = await snapshotOf(fixture.pid);
  t.is(snapshot.agent.mode, 'preload');
});

test('a second concurrent client is turned away with the first one named', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { sampleInterval: 'exact' });
  const path = `/tmp/leakscope-${process.getuid!()}/${fixture.pid}.sock`;
  const first = net.createConnection(path);
  await new Promise((r) => first.once('connect', r));
  t.teardown(() => first.destroy());
  await new Promise((r) => setTimeout(r, 100));
  oneLineError(t, await runCli(['snapshot', String(fixture.pid)]), /busy: another leakscope client \(pid \d+\) is attached/);
  first.destroy();
  await new Promise((r) => setTimeout(r, 100));
  t.is((await snapshotOf(fixture.pid)).agent.mode, 'preload');
  t.true(fixture.alive());
});

test('the socket of an agent killed outright (a Node service on SIGTERM) is swept by the next connect', async (t) => {
  const service = await startFixture<{ pid: number }>(t, 'global_array.mjs', [], { dir: NODE_FIXTURES, interpreter: process.execPath });
  const socket = `/tmp/leakscope-${process.getuid!()}/${service.pid}.sock`;
  t.true(existsSync(socket));
  process.kill(service.pid, 'SIGTERM');
  await new Promise((r) => service.child.once('exit', r));
  while (isAlive(service.pid)) await new Promise((r) => setTimeout(r, 20));
  const other = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { sampleInterval: 'exact' });
  t.is((await snapshotOf(other.pid)).agent.mode, 'preload');
  t.false(existsSync(socket), 'the dead agent\'s socket is gone');
  t.true(existsSync(`/tmp/leakscope-${process.getuid!()}/${other.pid}.sock`), 'the live one stays');
});

test('a process whose memory map even root may not read: what was denied, and why', async (t) => {
  if (process.getuid!() !== 0) return t.pass('needs root');
  // Here pid 1 of the sandbox is such a process; a machine without one has nothing to show.
  const denied = readdirSync('/proc').filter((name) => /^\d+$/.test(name)).find((pid) => {
    try {
      readFileSync(`/proc/${pid}/maps`);
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EACCES';
    }
  });
  if (denied === undefined) return t.pass('no process on this machine denies root its maps');
  oneLineError(t, await runCli(['snapshot', denied, '--no-inject']), new RegExp(`permission denied reading /proc/${denied}/maps of pid ${denied} \\(.*\\), even as root: `));
});

test('a pid we may not inspect', async (t) => {
  if (process.getuid!() !== 0) return t.pass('needs root to act as another user');
  const fixture = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { sampleInterval: 'exact' });
  const nobody = 65534;
  oneLineError(t, await runCli(['snapshot', String(fixture.pid)], { asUser: nobody }), /permission denied .* run leakscope as uid 0 or as root/);
  oneLineError(t, await runCli(['reclaim', String(fixture.pid)], { asUser: nobody }), /permission denied/);
  t.true(fixture.alive());
});

test('run: a command that does not exist', async (t) => {
  const result = await runCli(['run', '--', '/nonexistent/program']);
  t.is(result.code, 127);
  t.is(result.stderr.trim(), 'leakscope: command not found: /nonexistent/program');
});

test('run: an allocator that is not known', async (t) => {
  oneLineError(t, await runCli(['run', '--allocator', 'tcmalloc2', '--', 'true']), /unknown allocator 'tcmalloc2'/);
});

test('run: a count mode that is not known', async (t) => {
  oneLineError(t, await runCli(['run', '--counts', 'approximate', '--', 'true']), /--counts takes 'exact' or 'sampled', not 'approximate'/);
});

test('run passes the exit code through', async (t) => {
  const result = await runCli(['run', '-q', '--', 'sh', '-c', 'exit 3']);
  t.is(result.code, 3);
  t.is(result.stderr, '');
});

test('the socket directory is private and the socket is the owner’s only', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { sampleInterval: 'exact' });
  const dir = `/tmp/leakscope-${process.getuid!()}`;
  t.is((await fs.stat(dir)).mode & 0o777, 0o700);
  t.is((await fs.stat(`${dir}/${fixture.pid}.sock`)).mode & 0o777, 0o600);
});

test('a reader that closes the pipe early ends the output quietly, not with a stack trace', async (t) => {
  const pid = sleeper(t);
  const child = spawn(process.execPath, [CLI, 'snapshot', String(pid), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy(); // like `| head -c 0`: nobody reads
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += String(d)));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  t.is(stderr, '');
  t.is(code, 0);
});
