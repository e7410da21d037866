// The target lives through everything leakscope does to it, and through its
// own fork and exec; leakscope leaves nothing of its own behind.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import test, { type ExecutionContext } from 'ava';
import { CLI, FIXTURES, runCli, safeKill, snapshotOf, startFixture } from './helpers/process.js';

/** `leakscope run ARGS`: the pid the program reports once ready, and what run said on stderr. */
async function runThrough(t: ExecutionContext, args: readonly string[]): Promise<{ pid: number; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += String(chunk)));
  t.teardown(() => void child.kill('SIGKILL'));
  const pid = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => line.startsWith('{"ready":true') && resolve((JSON.parse(line) as { pid: number }).pid));
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  t.teardown(() => safeKill(pid, 'SIGKILL'));
  return { pid, stderr: () => stderr };
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return check();
}

test('run through a wrapper that execs the real program (a pyenv shim): a script is followed; a compiled wrapper, or --no-follow-exec, is said with the fix', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'leakscope-shim-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const shim = join(dir, 'python3');
  writeFileSync(shim, `#!/bin/sh\n# a shim: finds the real program, then becomes it\nexec ${FIXTURES}/growing_leak --steady "$@"\n`, { mode: 0o755 });

  const followed = await runThrough(t, ['--', shim]);
  t.regex(followed.stderr(), /python3 is a script; the agent follows it through exec/);
  const snapshot = await snapshotOf(followed.pid);
  t.is(snapshot.agent.mode, 'preload');
  t.regex(snapshot.command, /growing_leak/);

  const notFollowed = await runThrough(t, ['--no-follow-exec', '--', shim]);
  t.true(await until(() => /left the agent behind/.test(notFollowed.stderr())), notFollowed.stderr());
  t.regex(notFollowed.stderr(), new RegExp(`pid ${notFollowed.pid} exec'd ${FIXTURES}/growing_leak and left the agent behind \\(.*python3 is a wrapper that runs another program\\); run it again with --follow-exec`));

  // A compiled wrapper (env) is not a script: not followed unless asked, and said.
  const compiled = await runThrough(t, ['--', '/usr/bin/env', `${FIXTURES}/growing_leak`, '--steady']);
  t.true(await until(() => /left the agent behind/.test(compiled.stderr())), compiled.stderr());
  const asked = await runThrough(t, ['--follow-exec', '--', '/usr/bin/env', `${FIXTURES}/growing_leak`, '--steady']);
  t.is((await snapshotOf(asked.pid)).agent.mode, 'preload');
  t.notRegex(asked.stderr(), /left the agent behind/);

  // A static program: the loader never loads the agent, and run says so.
  const statik = await runThrough(t, ['--', `${FIXTURES}/static_park`]);
  t.true(await until(() => /the agent is not in pid/.test(statik.stderr())), statik.stderr());
  t.regex(statik.stderr(), new RegExp(`the agent is not in pid ${statik.pid} \\(${FIXTURES}/static_park\\): the loader did not load it`));
});

// The forked child starts threads that allocate and free, and frees and
// grows the parent's blocks (samples among them): under each allocator's
// way of keeping samples and both builds of the preload library.
for (const [allocator, counts] of [
  ['glibc', 'exact'],
  ['glibc', 'sampled'],
  ['mimalloc', 'exact'],
  ['mimalloc', 'sampled'],
] as const) {
  test(`fork and exec: the child and its threads work, the exec’d program has no agent, the parent is still served (${allocator}, counts ${counts})`, async (t) => {
    const fixture = await startFixture<{ pid: number; fork_child_exit: number; exec_child_agent_maps: number }>(t, 'fork_exec', [], {
      allocator,
      counts,
    });
    t.is(fixture.truth.fork_child_exit, 7);
    t.is(fixture.truth.exec_child_agent_maps, 0);
    const snapshot = await snapshotOf(fixture.pid);
    t.is(snapshot.agent.mode, 'preload');
    t.is(snapshot.agent.counts, counts);
    t.is(snapshot.pid, fixture.pid);
    t.true(fixture.alive());
  });
}

test('leakscope run maps the agent and the chosen allocator into the target; its counts are sampled unless --counts exact', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { allocator: 'mimalloc', sampleInterval: 'exact' });
  const environ = readFileSync(`/proc/${fixture.pid}/environ`, 'utf8');
  // /proc/PID/environ shows the environment as it was at exec; the live one is what children get.
  t.regex(environ, /LD_PRELOAD=[^\0]*libleakscope\.so/);
  const maps = readFileSync(`/proc/${fixture.pid}/maps`, 'utf8');
  t.regex(maps, /libleakscope\.so/);
  t.regex(maps, /libmimalloc/);
  t.is((await snapshotOf(fixture.pid)).agent.counts, 'sampled');

  const exact = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { counts: 'exact' });
  const exactMaps = readFileSync(`/proc/${exact.pid}/maps`, 'utf8');
  t.regex(exactMaps, /libleakscope-exact\.so/);
  t.notRegex(exactMaps, /libleakscope\.so/);
  t.is((await snapshotOf(exact.pid)).agent.counts, 'exact');
});

test('repeated snapshots and reclaims leave the target running and the CLI leaves no process behind', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'arena_burst', ['16']);
  const fdsBefore = readdirSync(`/proc/${fixture.pid}/fd`).length;
  const threadsBefore = readdirSync(`/proc/${fixture.pid}/task`).length;
  for (let i = 0; i < 5; i++) {
    t.is((await runCli(['snapshot', String(fixture.pid), '--json'])).code, 0);
    t.is((await runCli(['reclaim', String(fixture.pid)])).code, 0);
  }
  t.true(fixture.alive());
  // The agent closes every client connection: no fd or thread grows in the
  // target. It closes one when it reads the client's end, after the CLI has
  // exited: on a busy machine a moment later, so the count is given 2 s.
  const fds = () => readdirSync(`/proc/${fixture.pid}/fd`).length;
  for (const deadline = Date.now() + 2000; fds() !== fdsBefore && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
  t.is(fds(), fdsBefore);
  t.is(readdirSync(`/proc/${fixture.pid}/task`).length, threadsBefore);
  const children = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] === String(process.pid);
      } catch {
        return false;
      }
    });
  // Our own children: only fixtures started by this file's tests (each a `leakscope run`).
  for (const child of children) t.regex(readFileSync(`/proc/${child}/cmdline`, 'utf8'), /leakscope\.js\0run\0/);
});
