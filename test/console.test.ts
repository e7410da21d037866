// The console end to end, in a real terminal (tmux), on a real target: the
// event-loop fixture. Views, filter, grouping, reclaim, save and quit; then
// nothing of leakscope is left in or beside the target, and it runs on.
import { mkdtempSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { Snapshot } from '../src/model/snapshot.js';
import type { EventLoopTruth } from './helpers/event-loop.js';
import { CLI, isAlive, oneLineError, runCli, snapshotOf, startFixture } from './helpers/process.js';
import { Terminal } from './helpers/tmux.js';

/** The target's open sockets: its agent's listening socket, plus one per connected client. */
async function socketsOf(pid: number): Promise<number> {
  const fds = readdirSync(`/proc/${pid}/fd`);
  const links = await Promise.all(fds.map((fd) => fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return links.filter((l) => l.startsWith('socket:')).length;
}

/** Processes whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

test('attach in a real terminal: views, filter, group, reclaim, save, quit; the target is unharmed', async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '6', '--interval-ms', '50', '--forever']);
  const { pid, truth } = fixture;
  const socketsBefore = await socketsOf(pid);
  const saveDir = mkdtempSync(join(tmpdir(), 'leakscope-console-'));
  t.teardown(() => fs.rm(saveDir, { recursive: true, force: true }));

  // Under a CI variable, as on the machines that run these tests: Ink would draw only its last frame if the console let it see one.
  const term = await Terminal.start(t, [process.execPath, CLI, 'attach', String(pid), '--save-dir', saveDir, '--idle-threshold', '1s'], {
    env: { CI: 'true' },
  });
  // '● live' shows as soon as the agent is reached; the header, with the first snapshot.
  let screen = await term.until(new RegExp(`pid ${pid} · agent preload, counts sampled · glibc`));
  t.regex(screen, /tasks leaking/);
  const consolePid = await term.commandPid();
  t.is(await socketsOf(pid), socketsBefore + 1, 'one connection while attached');

  // Tasks, filtered by name as typed.
  await term.keys(['2']);
  await term.until(/Tasks [\d,]+ live · sorted by idle/);
  await term.keys(['/']);
  await term.keys(['heartbeat'], true);
  screen = await term.until('filter: heartbeat');
  await term.keys(['Enter']);
  // The agent's answer, not the loaded rows filtered while it was being asked.
  screen = await term.until((s) => s.includes('filter "heartbeat"') && !s.includes('the agent is looking'));
  const rows = screen.split('\n').filter((l) => /^\d{5,}\s/.test(l));
  t.true(rows.length > 0, screen);
  t.true(rows.every((row) => /\bheartbeat\b/.test(row)), `only heartbeat tasks:\n${screen}`);

  // Grouped by spawn site: the leaking site holds the heartbeats.
  await term.keys(['Escape']);
  await term.until((s) => !s.includes('filter "heartbeat"'));
  await term.keys(['g']);
  screen = await term.until('spawn sites');
  t.regex(screen, new RegExp(`${truth.sites.leak.replace('.', '\\.')}\\s+task\\s+\\d+`));
  await term.keys(['Escape', '3']);
  screen = await term.until('rates over the last refresh');
  t.regex(screen, new RegExp(`${pid}\\s+event_loop`));

  // Reclaim asks first, then shows the RSS it measured.
  await term.keys(['r']);
  await term.until(`Run malloc_trim(0) in pid ${pid}? y/n`);
  await term.keys(['y']);
  screen = await term.until(/malloc_trim\(0\): RSS [\d.]+ \S+ → [\d.]+ \S+ \([−+][\d.]+ \S+\) in/);

  // Save writes the snapshot on screen.
  await term.keys(['s']);
  screen = await term.until(/saved \S+\.json/);
  const saved = readdirSync(saveDir).filter((f) => f.endsWith('.json'));
  t.is(saved.length, 1);
  const snapshot = JSON.parse(await fs.readFile(join(saveDir, saved[0]!), 'utf8')) as Snapshot;
  t.is(snapshot.pid, pid);
  t.true(snapshot.tasks.sites.some((s) => s.site === truth.sites.leak && s.live > 0));

  t.deepEqual(childrenOf(consolePid), [], 'the console starts no process');
  await term.keys(['q']);
  t.is(await term.untilExited(), 0);
  t.false(isAlive(consolePid));
  // The agent closed our connection: only its listening socket is left.
  const deadline = Date.now() + 5000;
  while ((await socketsOf(pid)) !== socketsBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.is(await socketsOf(pid), socketsBefore);
  t.true(fixture.alive());
  const after = await snapshotOf(pid);
  t.is(after.agent.mode, 'preload', 'the agent still answers');
});

test('the console says when the target exits', async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '2', '--interval-ms', '50', '--forever']);
  // Without CI variables, as on a developer's terminal.
  const term = await Terminal.start(t, [process.execPath, CLI, 'attach', String(fixture.pid)], { env: { CI: null, CONTINUOUS_INTEGRATION: null } });
  await term.until('● live');
  process.kill(fixture.pid, 'SIGKILL');
  await term.until(`pid ${fixture.pid} exited`);
  await term.keys(['q']);
  t.is(await term.untilExited(), 0);
});

test('attach: a dead pid, a pid we may not inspect, no terminal', async (t) => {
  oneLineError(t, await runCli(['attach', '999999']), /no process with pid 999999/);
  oneLineError(t, await runCli(['attach', 'abc']), /'abc' is not a process id/);
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '1', '--interval-ms', '50', '--forever']);
  if (process.getuid!() === 0) oneLineError(t, await runCli(['attach', String(fixture.pid)], { asUser: 65534 }), /permission denied/);
  oneLineError(t, await runCli(['attach', String(fixture.pid)]), /needs a terminal; in scripts use 'leakscope snapshot --json'/);
  oneLineError(t, await runCli(['view', '/nonexistent.jsonl']), /no such file: \/nonexistent\.jsonl/);
  t.true(fixture.alive());
});

test('the Heap view lists allocation stacks; Enter opens the callers; from a finding, Enter goes to its stacks', async (t) => {
  const fixture = await startFixture<{ pid: number; leak_function: string; leak_caller: string; leak_line: number }>(t, 'alloc_sites');
  const { pid, truth } = fixture;
  const term = await Terminal.start(t, [process.execPath, CLI, 'attach', String(pid)], { size: { columns: 120, rows: 40 }, env: { CI: 'true' } });
  await term.until(new RegExp(`pid ${pid} · agent preload`));
  await term.keys(['4']);
  let screen = await term.until(/Allocation stacks \(sampled every ~512\.0 KiB, dwarf unwinding/);
  // The leaking function becomes the first row, the largest (in the first seconds the sawtooth window may be); closed.
  screen = await term.until(
    new RegExp(`allocated at ← called from\\n\\S+ \\S+\\s+\\+\\S+ \\S+\\s+▸ ${truth.leak_function} \\(alloc_sites\\.c:${truth.leak_line}\\)$`, 'm'),
    30_000,
  );
  await term.keys(['Enter']);
  screen = await term.until(new RegExp(`^\\S+ \\S+\\s+\\+\\S+ \\S+\\s+ {2}▸ ← ${truth.leak_caller} \\(alloc_sites\\.c:\\d+\\)$`, 'm'));
  t.regex(screen, new RegExp(`▾ ${truth.leak_function} \\(`));
  await term.keys(['Escape']);
  await term.until((s) => !/▾/.test(s));
  // Once heap-growth is found, Enter on it lands on the leaking stack, its callers open.
  await term.keys(['1']);
  await term.until(/ERROR\s+heap-growth/, 90_000);
  await term.keys(['Enter']);
  screen = await term.until(new RegExp(`^\\S+ \\S+\\s+\\+\\S+ \\S+\\s+ {4}▾ ← main \\(alloc_sites\\.c:\\d+\\)$|^\\S+ \\S+\\s+\\+\\S+ \\S+\\s+ {4}▸? ?← main`, 'm'));
  t.regex(screen, new RegExp(`^\\S+ \\S+\\s+\\+\\S+ \\S+\\s+ {2}▾ ← ${truth.leak_caller} \\(alloc_sites\\.c:\\d+\\)$`, 'm'));
  t.regex(screen, /Allocation stacks/);
  await term.keys(['q']);
  t.is(await term.untilExited(), 0);
  t.true(fixture.alive());
});
