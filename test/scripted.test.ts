// Scripted use: watch recordings (across the target's exit), diff of two
// recorded snapshots, and check's exit codes for CI gates.
import { spawn } from 'node:child_process';
import { mkdtempSync, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { Snapshot } from '../src/model/snapshot.js';
import type { SnapshotDiff } from '../src/analysis/diff.js';
import { parseRecording } from '../src/model/recording.js';
import { runCli, safeKill, startFixture } from './helpers/process.js';
import type { EventLoopTruth } from './helpers/event-loop.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'leakscope-test-'));

test('watch records JSON lines and ends cleanly when the target exits', async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '3', '--interval-ms', '20']);
  const out = join(scratch(), 'rec.jsonl');
  const watching = runCli(['watch', String(fixture.pid), '--interval', '200ms', '--out', out]);
  // Let it record a few snapshots, then end the target under it.
  for (let i = 0; i < 100; i++) {
    const text = await fs.readFile(out, 'utf8').catch(() => '');
    if (text.split('\n').length > 4) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  safeKill(fixture.pid, 'SIGTERM');
  const result = await watching;
  t.is(result.code, 0, result.stderr);
  const recording = parseRecording(await fs.readFile(out, 'utf8'), out);
  t.true(recording.snapshots.length >= 3);
  t.true(recording.snapshots.every((s) => s.pid === fixture.pid && s.tasks.sites.some((x) => x.site === fixture.truth.sites.leak)));
  t.like(recording.events[0], { event: 'start', pid: fixture.pid, interval_ms: 200 });
  t.like(recording.events.at(-1), { event: 'end', reason: 'target exited', snapshots: recording.snapshots.length });
});

test('watch --count stops after that many snapshots, on stdout', async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '3', '--interval-ms', '20']);
  const result = await runCli(['watch', String(fixture.pid), '--interval', '100ms', '--count', '3']);
  t.is(result.code, 0, result.stderr);
  const lines = result.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { schema: string; event?: string; reason?: string });
  t.deepEqual(
    lines.map((l) => l.event ?? l.schema),
    ['start', 'leakscope.snapshot/1', 'leakscope.snapshot/1', 'leakscope.snapshot/1', 'end'],
  );
  t.is(lines.at(-1)?.reason, 'count reached');
  t.true(fixture.alive());
});

test('diff names the spawn site that grew between two recorded snapshots', async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '2', '--interval-ms', '250', '--forever']);
  const dir = scratch();
  const a = join(dir, 'a.json');
  const b = join(dir, 'b.json');
  t.is((await runCli(['snapshot', String(fixture.pid), '--out', a])).code, 0);
  await new Promise((r) => setTimeout(r, 2500));
  t.is((await runCli(['snapshot', String(fixture.pid), '--out', b])).code, 0);
  const result = await runCli(['diff', a, b, '--json']);
  t.is(result.code, 0, result.stderr);
  const diff = JSON.parse(result.stdout) as SnapshotDiff;
  const before = JSON.parse(await fs.readFile(a, 'utf8'));
  const after = JSON.parse(await fs.readFile(b, 'utf8'));
  const liveAt = (s: { tasks: { sites: { site: string; live: number }[] } }) => s.tasks.sites.find((x) => x.site === fixture.truth.sites.leak)!.live;
  t.is(diff.sites[0]?.site, fixture.truth.sites.leak, 'the leaking site grew most');
  t.deepEqual(diff.sites[0]?.live, { from: liveAt(before), to: liveAt(after), delta: liveAt(after) - liveAt(before) });
  t.true(diff.sites[0]!.live.delta >= 5, `grew by ${diff.sites[0]!.live.delta} in 2.5 s at 4 a second`);
  t.true(diff.same_process);
  const human = await runCli(['diff', a, b]);
  t.regex(human.stdout, new RegExp(`${fixture.truth.sites.leak.replace('.', '\\.')}\\s+task\\s+\\d+ → \\d+\\s+\\+\\d+`));
});

test('check: 1 with findings at the level, 0 below it, 2 when it cannot check', async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '12', '--interval-ms', '20']);
  const pid = String(fixture.pid);
  const found = await runCli(['check', pid, '--idle-threshold', '1s']);
  t.is(found.code, 1, found.stderr);
  t.regex(found.stdout, /^verdict: tasks leaking — 12 tasks spawned at event_loop\.c:\d+ have been idle for over 1 s\n/);
  t.regex(found.stdout, /^WARN idle-forever: 12 tasks spawned at event_loop\.c:\d+ have been idle for over 1 s$/m);
  t.regex(found.stdout, /^failed: \d+ findings at or above warn/m);
  // Nothing here is an error: the blocking poll is over.
  const errorsOnly = await runCli(['check', pid, '--idle-threshold', '1s', '--fail-on', 'error']);
  t.is(errorsOnly.code, 0, errorsOnly.stdout);

  const file = join(scratch(), 'snap.json');
  await runCli(['snapshot', pid, '--idle-threshold', '1s', '--out', file]);
  const fromFile = await runCli(['check', file, '--idle-threshold', '1s', '--json']);
  t.is(fromFile.code, 1);
  const json = JSON.parse(fromFile.stdout) as { passed: boolean; verdict: Snapshot['verdict'] };
  t.false(json.passed);
  t.like(json.verdict, { cause: 'tasks-leaking' });
  t.true(json.verdict.because.includes('idle-forever'));

  const garbled = join(scratch(), 'garbled.json');
  await fs.writeFile(garbled, '{"schema": "leakscope.snapshot/1", "pid": ');
  for (const args of [['check', garbled], ['check', '999999999'], ['check', pid, '--fail-on', 'never']]) {
    const result = await runCli(args);
    t.is(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    t.regex(result.stderr, /^leakscope: /);
    t.is(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
  }
  const dead = spawn('true');
  await new Promise((r) => dead.once('exit', r));
  t.is((await runCli(['check', String(dead.pid)])).code, 2);
});
