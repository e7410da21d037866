// Live attach to running native processes (docs/attach.md): programs started
// plainly, with no leakscope run, get the agent by pid through the injector
// and are judged on what it measures from then on; every refusal is one
// line and the /proc view; the target always runs on.
import { execFile, spawn } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { allocatorLibraryPath, PACKAGE_ROOT } from '../src/paths.js';
import type { Snapshot } from '../src/model/snapshot.js';
import { processState } from '../src/conn/target.js';
import { gotTarget } from './helpers/got.js';
import { findingIds as ids, IDLE } from './helpers/owner.js';
import { CLI, type Fixture, FIXTURES, isAlive, MiB, oneLineError, RUST_FIXTURES, runCli, safeKill, snapshotOf, snapshotUntil, startFixture } from './helpers/process.js';
import { Terminal } from './helpers/tmux.js';

const run = promisify(execFile);
const INJECTOR = resolve(PACKAGE_ROOT, 'build/lib/leakscope-inject');
const INJECT_LIBRARY = resolve(PACKAGE_ROOT, 'build/lib/libleakscope-inject.so');

/** The agent reads LEAKSCOPE_* from the target's environment: a sample every 8 KiB on average keeps the estimates of a few MiB within a few percent. */
const DENSE_SAMPLES = { LEAKSCOPE_SAMPLE_INTERVAL: '8192' };

/** The newest line a fixture printed that has `key`, parsed. */
function follow(fixture: Fixture<unknown>): <T>(key: string) => T | null {
  const latest = new Map<string, unknown>();
  createInterface({ input: fixture.child.stdout! }).on('line', (line) => {
    try {
      const value = JSON.parse(line) as Record<string, unknown>;
      for (const key of Object.keys(value)) latest.set(key, value);
    } catch {
      // not a report line
    }
  });
  return <T>(key: string) => (latest.get(key) as T | undefined) ?? null;
}

async function until<T>(probe: () => T | null | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function thread(snapshot: Snapshot, tid: number) {
  return snapshot.threads.find((t) => t.tid === tid);
}

/** Attaches (the first snapshot), waits 4 s, and snapshots again: with how much the fixture's counter `key` (bytes it kept) grew between. */
async function attachAndWait(fixture: Fixture<unknown>, key: string): Promise<{ snapshot: Snapshot; since: number }> {
  const latest = follow(fixture);
  const counter = () => latest<Record<string, number>>(key)?.[key];
  await until(counter, 'a report');
  await snapshotOf(fixture.pid);
  const atAttach = counter()!;
  await new Promise((r) => setTimeout(r, 4000));
  const snapshot = await snapshotOf(fixture.pid);
  return { snapshot, since: counter()! - atAttach };
}

/** The leaker's live bytes since attach against what the fixture says it kept since then. */
function assertLiveSinceAttach(t: ExecutionContext, measured: number | null | undefined, truth: number, slack = 0.3) {
  t.true(truth > 2 * MiB, `the fixture leaked only ${truth} bytes since attach`);
  t.true(
    measured !== null && measured !== undefined && measured >= (1 - slack) * truth && measured <= (1 + slack) * truth,
    `live since attach ${measured}, truth ${truth}`,
  );
}

test('a glibc program started plainly: attach loads the agent, arena-fragmentation is measured, reclaim gives pages back', async (t) => {
  const fixture = await startFixture<{ pid: number; burst_bytes: number; survivor_bytes: number }>(t, 'arena_burst', [], { withoutAgent: true });
  const snapshot = await snapshotOf(fixture.pid, IDLE);
  t.is(snapshot.agent.mode, 'inject');
  t.true(snapshot.agent.hooks?.in, JSON.stringify(snapshot.agent));
  t.truthy(snapshot.allocator.counted_since);
  t.true(snapshot.agent.notes.some((n) => /loaded into the running process/.test(n)));
  const finding = snapshot.findings.find((f) => f.id === 'arena-fragmentation');
  t.truthy(finding, `findings: ${ids(snapshot).join(', ')}`);
  const freedByBurst = fixture.truth.burst_bytes - fixture.truth.survivor_bytes;
  t.true(finding!.value >= 0.8 * freedByBurst && finding!.value <= 1.1 * freedByBurst, `retained ${finding!.value}, freed ${freedByBurst}`);
  t.is(snapshot.verdict.cause, 'allocator-retention');

  const reclaim = await runCli(['reclaim', String(fixture.pid), '--json']);
  t.is(reclaim.code, 0, reclaim.stderr);
  const result = JSON.parse(reclaim.stdout) as { before_rss_bytes: number; after_rss_bytes: number };
  t.true(result.before_rss_bytes - result.after_rss_bytes >= 0.5 * freedByBurst, JSON.stringify(result));
  t.true(fixture.alive());
  t.is(await processState(fixture.pid), 'S');
});

test('a running mimalloc program (Debian libmimalloc): remote frees since attach are measured per owner, and sleeping-owner is left undecided rather than guessed', async (t) => {
  const mimalloc = allocatorLibraryPath('mimalloc')!;
  const fixture = await startFixture<{ pid: number; owner_tid: number }>(t, 'sleeping_owner', ['128', 'late'], {
    withoutAgent: true,
    env: { LD_PRELOAD: mimalloc },
  });
  const latest = follow(fixture);
  const attached = await snapshotOf(fixture.pid, IDLE);
  t.is(attached.agent.mode, 'inject');
  t.is(attached.allocator.name, 'mimalloc');
  safeKill(fixture.pid, 'SIGUSR2'); // the loader builds now, under the hooks
  const built = await until(() => latest<{ remote_freed_bytes: number }>('built'), 'the build');
  const snapshot = await snapshotUntil(
    fixture.pid,
    (s) =>
      (thread(s, fixture.truth.owner_tid)?.heap?.remote_freed_bytes ?? 0) >= 0.9 * built.remote_freed_bytes &&
      (thread(s, fixture.truth.owner_tid)?.idle_ms ?? 0) >= 3000, // asleep past the threshold: the owner is judged
    { extra: IDLE },
  );
  const owner = thread(snapshot, fixture.truth.owner_tid);
  const remote = owner?.heap?.remote_freed_bytes ?? 0;
  t.true(Math.abs(remote - built.remote_freed_bytes) <= 0.1 * built.remote_freed_bytes, `remote-freed ${remote}, truth ${built.remote_freed_bytes}`);
  // What stays in RSS beyond live data cannot be measured from a ledger that began at attach.
  t.false(ids(snapshot).includes('sleeping-owner'));
  t.false(ids(snapshot).includes('heap-growth'));
  t.truthy(snapshot.pending_checks.find((p) => p.id === 'sleeping-owner' && /counted from attach/.test(p.reason)), JSON.stringify(snapshot.pending_checks));
  t.true(fixture.alive());
});

test('a running jemalloc program: the allocator is named from its statistics, and a thread leaking since attach is measured', async (t) => {
  const fixture = await startFixture<{ pid: number; leaker_tid: number }>(t, 'attach_target', ['--leak-kib-per-s', '1024'], {
    withoutAgent: true,
    env: { LD_PRELOAD: allocatorLibraryPath('jemalloc')!, ...DENSE_SAMPLES },
  });
  const { snapshot, since } = await attachAndWait(fixture, 'leaked_bytes');
  t.is(snapshot.agent.mode, 'inject');
  t.is(snapshot.allocator.name, 'jemalloc');
  t.true(snapshot.allocator.arenas.length >= 1);
  assertLiveSinceAttach(t, thread(snapshot, fixture.truth.leaker_tid)?.heap?.live_bytes, since, 0.25);
  t.true(fixture.alive());
});

test('a running C++ program: operator new through libstdc++ is hooked, and the leaking thread is measured', async (t) => {
  const fixture = await startFixture<{ pid: number; filler_tid: number }>(t, 'cpp_cache', [], { withoutAgent: true, env: DENSE_SAMPLES });
  const { snapshot, since } = await attachAndWait(fixture, 'cached_bytes');
  t.is(snapshot.agent.mode, 'inject');
  t.true((snapshot.agent.hooks?.objects ?? 0) >= 2, `the executable and libstdc++: ${JSON.stringify(snapshot.agent.hooks)}`);
  // The values, plus their keys and the table's buckets.
  assertLiveSinceAttach(t, thread(snapshot, fixture.truth.filler_tid)?.heap?.live_bytes, since, 0.4);
  t.true(fixture.alive());
});

test('a running Rust program on the System allocator is measured; one with its own allocator is named, not mis-measured', async (t) => {
  const plain = await startFixture<{ pid: number; leaker_tid: number; leak_bytes_per_s: number }>(t, 'plain_leak', [], {
    withoutAgent: true,
    dir: RUST_FIXTURES,
    env: DENSE_SAMPLES,
  });
  const first = await snapshotOf(plain.pid);
  t.is(first.agent.mode, 'inject');
  t.is(first.agent.hooks?.linked_allocator, null);
  await new Promise((r) => setTimeout(r, 4000));
  const snapshot = await snapshotOf(plain.pid);
  const seconds = (Date.parse(snapshot.taken_at) - Date.parse(snapshot.allocator.counted_since!)) / 1000;
  assertLiveSinceAttach(t, thread(snapshot, plain.truth.leaker_tid)?.heap?.live_bytes, seconds * plain.truth.leak_bytes_per_s, 0.25);

  // http_bare: #[global_allocator] MiMalloc, linked in.
  const child = spawn(resolve(RUST_FIXTURES, 'http_bare'), [], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  await until(() => (child.pid && isAlive(child.pid) ? true : null), 'http_bare');
  await new Promise((r) => setTimeout(r, 300));
  const linked = await snapshotOf(child.pid!);
  t.is(linked.agent.mode, 'inject');
  t.is(linked.agent.hooks?.linked_allocator, 'mi_malloc');
  t.true(linked.agent.notes.some((n) => /carries its own allocator \(mi_malloc\).*leakscope's crate/.test(n)), linked.agent.notes.join('\n'));
  t.true(isAlive(child.pid!));
});

test('a program in its own mount namespace (private /tmp, or read-only /tmp) or pid namespace: the library goes into its /tmp or a memfd, the socket is reached through /proc/PID/root, the pid is the one asked for', async (t) => {
  // Outside /tmp, which the namespace mounts over (a checkout may live in /tmp).
  const outside = await mkdtemp('/var/tmp/leakscope-ns-');
  t.teardown(() => rm(outside, { recursive: true, force: true }));
  const binary = resolve(outside, 'attach_target');
  await copyFile(resolve(FIXTURES, 'attach_target'), binary);
  await chmod(binary, 0o755);
  const fixture = await startFixture<{ pid: number; leaker_tid: number }>(
    t,
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs tmpfs /tmp && exec ${binary} --leak-kib-per-s 256`],
    { withoutAgent: true, dir: '/usr/bin' },
  );
  const snapshot = await snapshotOf(fixture.pid);
  t.is(snapshot.agent.mode, 'inject');
  const maps = await readFile(`/proc/${fixture.pid}/maps`, 'utf8');
  t.regex(maps, /\/tmp\/leakscope-inject-\d+\/libleakscope-inject\.so/);
  t.false(maps.includes(INJECT_LIBRARY), 'not our path: the target cannot see it');
  const socket = await readFile(`/proc/${fixture.pid}/root/tmp/leakscope-${process.getuid!()}/${fixture.pid}.sock`).catch((e: NodeJS.ErrnoException) => e.code);
  t.is(socket, 'ENXIO', 'the socket lives in the target\'s own /tmp');
  t.true(fixture.alive());

  // A read-only /tmp (a hardened container): the library comes in a memfd of
  // the target's own, closed once loaded, and the socket goes to /dev/shm.
  const readOnly = await startFixture<{ pid: number }>(
    t,
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o ro tmpfs /tmp && exec ${binary} --leak-kib-per-s 256`],
    { withoutAgent: true, dir: '/usr/bin' },
  );
  const sealed = await snapshotOf(readOnly.pid);
  t.is(sealed.agent.mode, 'inject', sealed.agent.notes.join('\n'));
  t.regex(await readFile(`/proc/${readOnly.pid}/maps`, 'utf8'), /\/memfd:leakscope-agent/);
  const fds = await readdir(`/proc/${readOnly.pid}/fd`);
  const links = await Promise.all(fds.map((fd) => readlink(`/proc/${readOnly.pid}/fd/${fd}`).catch(() => '')));
  t.false(links.some((l) => l.includes('memfd:leakscope-agent')), 'the memfd is closed once loaded');
  t.is(await readFile(`/proc/${readOnly.pid}/root/dev/shm/leakscope-${process.getuid!()}/${readOnly.pid}.sock`).catch((e: NodeJS.ErrnoException) => e.code), 'ENXIO');

  // Its own pid namespace too (unshare -pf --mount-proc): it is pid 1 there.
  const unshare = spawn('unshare', ['-pf', '--mount-proc', binary, '--leak-kib-per-s', '256'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => unshare.kill('SIGKILL'));
  const inner = await new Promise<{ pid: number }>((ready) => createInterface({ input: unshare.stdout }).once('line', (l) => ready(JSON.parse(l))));
  t.is(inner.pid, 1);
  const { stdout: children } = await run('pgrep', ['-P', String(unshare.pid)]);
  const outer = Number(children.trim().split('\n')[0]);
  t.teardown(() => safeKill(outer, 'SIGKILL'));
  const namespaced = await snapshotOf(outer);
  t.is(namespaced.agent.mode, 'inject');
  t.is(namespaced.pid, outer);
  t.true(namespaced.agent.notes.includes(`pid ${outer} is pid 1 in its own pid namespace`), namespaced.agent.notes.join('\n'));
});

test('a program that forks and execs keeps doing so after attach: no child dies, the parent stays attached', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'attach_target', ['--fork-every', '200', '--loop-threads', '1'], { withoutAgent: true });
  const latest = follow(fixture);
  const first = await snapshotOf(fixture.pid);
  t.is(first.agent.mode, 'inject', first.agent.notes.join('\n'));
  const before = await until(() => latest<{ forks: number; fork_failures: number }>('forks'), 'a report');
  await until(() => (latest<{ forks: number }>('forks')!.forks >= before.forks + 10 ? true : null), '10 more forks');
  const after = latest<{ forks: number; fork_failures: number; ops: number }>('forks')!;
  t.is(after.fork_failures, 0, 'every forked child exited 0, every exec ran');
  const again = await snapshotOf(fixture.pid);
  t.is(again.agent.mode, 'inject');
  t.is(again.pid, fixture.pid);
  t.true(fixture.alive());
});

test('after the last client leaves and the linger ends, the hooks come out; the next attach reuses the agent', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'attach_target', ['--leak-kib-per-s', '64'], { withoutAgent: true });
  const first = await snapshotOf(fixture.pid, ['--linger', '1s']);
  t.is(first.agent.mode, 'inject');
  // The leaker's malloc goes through the executable's GOT.
  t.true((await gotTarget(fixture.pid, 'malloc')).endsWith('libleakscope-inject.so'));
  const deadline = Date.now() + 10_000;
  let target = '';
  while (Date.now() < deadline && !(target = await gotTarget(fixture.pid, 'malloc')).endsWith('libc.so.6')) await new Promise((r) => setTimeout(r, 200));
  t.true(target.endsWith('libc.so.6'), `malloc's GOT entry leads to ${target}`);
  const maps = await readFile(`/proc/${fixture.pid}/maps`, 'utf8');
  const second = await snapshotOf(fixture.pid);
  t.is(second.agent.mode, 'inject');
  t.true(second.agent.hooks?.in);
  t.true(Date.parse(second.allocator.counted_since!) > Date.parse(first.allocator.counted_since!), 'counting started again');
  t.is(await readFile(`/proc/${fixture.pid}/maps`, 'utf8').then((m) => m.split('libleakscope-inject.so').length), maps.split('libleakscope-inject.so').length, 'loaded once');
  t.true(fixture.alive());
});

test('refusals are one line each, with the /proc view: a stopped process (left stopped), a traced one, a static one; a kernel thread is an error', async (t) => {
  const stopped = await startFixture<{ pid: number }>(t, 'attach_target', [], { withoutAgent: true });
  safeKill(stopped.pid, 'SIGSTOP');
  while ((await processState(stopped.pid)) !== 'T') await new Promise((r) => setTimeout(r, 20));
  const view = await snapshotOf(stopped.pid);
  t.is(view.agent.mode, 'proc');
  t.true(view.agent.notes.some((n) => /is stopped \(SIGSTOP or job control\).*kill -CONT/.test(n)), view.agent.notes.join('\n'));
  t.is(await processState(stopped.pid), 'T', 'left stopped, as it was');
  safeKill(stopped.pid, 'SIGCONT');
  t.is((await snapshotOf(stopped.pid)).agent.mode, 'inject', 'continued, it can be attached');

  const traced = await startFixture<{ pid: number }>(t, 'attach_target', [], { withoutAgent: true });
  const gdb = spawn('gdb', ['-q', '-nx', '-p', String(traced.pid), '-batch', '-ex', 'shell sleep 30'], { stdio: 'ignore' });
  t.teardown(() => gdb.kill('SIGKILL'));
  const tracerDeadline = Date.now() + 20_000;
  while (Date.now() < tracerDeadline && !/TracerPid:\s+[1-9]/.test(await readFile(`/proc/${traced.pid}/status`, 'utf8')))
    await new Promise((r) => setTimeout(r, 50));
  const tracedView = await snapshotOf(traced.pid);
  t.true(tracedView.agent.notes.some((n) => /already traced by pid \d+ \(gdb\)/.test(n)), tracedView.agent.notes.join('\n'));
  gdb.kill('SIGKILL');

  const staticProgram = await startFixture<{ pid: number }>(t, 'static_park', [], { withoutAgent: true });
  const staticView = await snapshotOf(staticProgram.pid);
  t.true(staticView.agent.notes.some((n) => /statically linked/.test(n)), staticView.agent.notes.join('\n'));

  // A kernel thread has no user memory at all: said, not shown as an empty snapshot.
  oneLineError(t, await runCli(['snapshot', '2']), /^leakscope: pid 2 is a kernel thread \(kthreadd\): it has no user memory to inspect/);
  for (const f of [stopped, traced, staticProgram]) t.true(f.alive());
});

test('the injector: 20 loads into a two-thread malloc/free loop and 20 into a process of 200 threads, with hooks in and out between; no crash, no hang', async (t) => {
  for (const args of [['--loop-threads', '2'], ['--loop-threads', '2', '--idle-threads', '200']]) {
    const fixture = await startFixture<{ pid: number; threads: number }>(t, 'attach_target', args, { withoutAgent: true });
    const latest = follow(fixture);
    await until(() => latest<{ ops: number }>('ops'), 'a report');
    for (let cycle = 0; cycle < 20; cycle++) {
      const { stdout } = await run(INJECTOR, [String(fixture.pid), '--library', INJECT_LIBRARY, '--options', 'linger_ms=0'], { timeout: 30_000 });
      const reply = JSON.parse(stdout) as { ok: boolean; pause_us: number; message?: string };
      t.true(reply.ok, `cycle ${cycle}: ${stdout}`);
      const snapshot = await snapshotOf(fixture.pid, ['--linger', '0s']);
      t.is(snapshot.agent.mode, 'inject');
      t.not(await processState(fixture.pid), 'T');
    }
    const ops = latest<{ ops: number }>('ops')!.ops;
    await until(() => (latest<{ ops: number }>('ops')!.ops > ops ? true : null), 'the loop to go on');
    t.true(fixture.alive());
    t.is((await snapshotOf(fixture.pid)).process.threads, fixture.truth.threads + 3, "its threads and the agent's three");
  }
});

test('a process whose main thread forks every millisecond while other threads malloc and trim (so threads often wait on malloc\'s locks, holding others): 30 loads, and it never stops', async (t) => {
  // A thread waiting for a lock of the C library may hold another (fork
  // takes every arena's in turn): pthread_create on it would wait for itself.
  // The injector borrows a futex waiter only when the futex is the program's
  // own (an early injector without that check hung this way on the fork test).
  const fixture = await startFixture<{ pid: number }>(t, 'attach_target', ['--fork-every', '1', '--loop-threads', '1', '--trim-threads', '1'], {
    withoutAgent: true,
  });
  const latest = follow(fixture);
  await until(() => latest<{ forks: number }>('forks'), 'a report');
  for (let cycle = 0; cycle < 30; cycle++) {
    const { stdout } = await run(INJECTOR, [String(fixture.pid), '--library', INJECT_LIBRARY, '--options', 'linger_ms=0'], { timeout: 30_000 });
    t.true((JSON.parse(stdout) as { ok: boolean }).ok, `cycle ${cycle}: ${stdout}`);
  }
  for (const what of ['forks', 'ops'] as const) {
    const before = latest<Record<string, number>>(what)![what]!;
    await until(() => (latest<Record<string, number>>(what)![what]! > before ? true : null), `more ${what}: the process goes on`, 10_000);
  }
  t.is(latest<{ fork_failures: number }>('forks')!.fork_failures, 0);
  t.true(fixture.alive());
});

test('a thread stopped in the middle of its computation gets every register back: 20 loads through busy threads, no sum ever wrong', async (t) => {
  // Only threads that compute: each load stops one of them in its own code
  // (LEAKSCOPE_INJECT_PREFER=busy skips the waiting main thread), runs the
  // stub on it and lets the stub put back its integer, flag and vector
  // registers. A register not put back shows as a wrong sum.
  const fixture = await startFixture<{ pid: number }>(t, 'attach_target', ['--check-threads', '2'], { withoutAgent: true });
  const latest = follow(fixture);
  await until(() => latest<{ checks: number }>('checks'), 'a report');
  for (let cycle = 0; cycle < 20; cycle++) {
    const { stdout } = await run(INJECTOR, [String(fixture.pid), '--library', INJECT_LIBRARY, '--options', 'linger_ms=0'], {
      timeout: 30_000,
      env: { ...process.env, LEAKSCOPE_INJECT_PREFER: 'busy' },
    });
    const reply = JSON.parse(stdout) as { ok: boolean; safe_point: string };
    t.true(reply.ok, `cycle ${cycle}: ${stdout}`);
    t.is(reply.safe_point, 'user code');
  }
  const before = latest<{ checks: number; check_failures: number }>('checks')!;
  await until(() => (latest<{ checks: number }>('checks')!.checks > before.checks + 100 ? true : null), 'more checks');
  t.is(latest<{ check_failures: number }>('checks')!.check_failures, 0);
  t.true(fixture.alive());
});

test('the same commands on a pid attached late: the console in a real terminal, watch, check', async (t) => {
  const fixture = await startFixture<{ pid: number; burst_bytes: number }>(t, 'arena_burst', [], { withoutAgent: true });
  const term = await Terminal.start(t, [process.execPath, CLI, 'attach', String(fixture.pid), '--idle-threshold', '1s'], { env: { CI: 'true' } });
  // '● live' shows as soon as the agent is reached; the header, with the first snapshot.
  const screen = await term.until(new RegExp(`pid ${fixture.pid} · agent inject, counts sampled · glibc`));
  t.regex(screen, /allocator retention, not a leak/);
  await term.keys(['q']);
  t.is(await term.untilExited(), 0);

  const watch = await runCli(['watch', String(fixture.pid), '--interval', '200ms', '--count', '2']);
  t.is(watch.code, 0, watch.stderr);
  const lines = watch.stdout.trim().split('\n').map((l) => JSON.parse(l) as { schema: string } & Partial<Snapshot>);
  const snapshots = lines.filter((l) => l.schema === 'leakscope.snapshot/1');
  t.is(snapshots.length, 2);
  t.true(snapshots.every((s) => s.agent?.mode === 'inject'));

  const check = await runCli(['check', String(fixture.pid), '--fail-on', 'warn']);
  t.is(check.code, 1, check.stdout + check.stderr);
  t.regex(check.stdout, /arena-fragmentation/);
  t.true(fixture.alive());
});

test('a target killed while the injector works: the injector answers within its deadline, every time, and says the target exited', async (t) => {
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 12; i++) {
    const fixture = await startFixture<{ pid: number }>(t, 'attach_target', ['--loop-threads', '1'], { withoutAgent: true });
    const started = Date.now();
    const injector = run(INJECTOR, [String(fixture.pid), '--library', INJECT_LIBRARY, '--timeout-ms', '2000'], { timeout: 20_000 }).then(
      ({ stdout }) => stdout,
      (error: { stdout?: string }) => error.stdout ?? '',
    );
    setTimeout(() => safeKill(fixture.pid, 'SIGKILL'), i * 3); // 0 .. 33 ms in: before, during and after the load
    const reply = JSON.parse((await injector).trim() || '{}') as { ok?: boolean; code?: string };
    t.true(Date.now() - started < 10_000, 'answered, not hung');
    t.true(reply.ok === true || ['no-process', 'exited'].includes(reply.code ?? ''), JSON.stringify(reply));
    const key = reply.ok ? 'loaded' : reply.code!;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }
  t.log([...outcomes].map(([k, n]) => `${k} ×${n}`).join(', '));
});

test('the CLI killed while it loads the agent: the target runs on, and the next snapshot attaches', async (t) => {
  for (let i = 0; i < 8; i++) {
    const fixture = await startFixture<{ pid: number }>(t, 'attach_target', ['--loop-threads', '1'], { withoutAgent: true });
    const latest = follow(fixture);
    const cli = spawn(process.execPath, [CLI, 'snapshot', String(fixture.pid), '--json'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 120 + i * 15)); // Node's start, then 0 .. 105 ms into the load
    cli.kill('SIGKILL');
    await until(() => latest<{ ops: number }>('ops'), 'a report');
    const ops = latest<{ ops: number }>('ops')!.ops;
    await until(() => (latest<{ ops: number }>('ops')!.ops > ops ? true : null), 'the target to go on');
    t.not(await processState(fixture.pid), 'T');
    const snapshot = await snapshotOf(fixture.pid);
    t.is(snapshot.agent.mode, 'inject');
    t.regex(await readFile(`/proc/${fixture.pid}/maps`, 'utf8'), /libleakscope-inject\.so/);
    safeKill(fixture.pid, 'SIGKILL');
  }
});
