// Real snapshots, with an agent and without, conform to the documented
// schema (docs/snapshot.schema.json).
import { spawn } from 'node:child_process';
import test from 'ava';
import { runCli, RUST_FIXTURES, snapshotOf, snapshotUntil, startFixture } from './helpers/process.js';
import { schemaErrors } from './helpers/schema.js';

test('a snapshot with findings, under each allocator, conforms', async (t) => {
  for (const [fixture, allocator] of [['sleeping_owner', 'mimalloc'], ['arena_burst', 'glibc'], ['idle_arena', 'jemalloc']] as const) {
    const started = await startFixture<{ pid: number }>(t, fixture, [], { allocator });
    const snapshot = await snapshotUntil(started.pid, (s) => s.findings.length > 0, { extra: ['--idle-threshold', '2s'] });
    t.true(snapshot.findings.length > 0, fixture);
    t.is(schemaErrors(snapshot), null, fixture);
  }
});

// A Node service's snapshot is validated in node.test.ts, whose tests take
// the inspector port one at a time.

test('a snapshot from a Rust service through the crate conforms', async (t) => {
  const started = await startFixture<{ pid: number }>(t, 'owner_mimalloc', ['16'], { withoutAgent: true, dir: RUST_FIXTURES });
  const snapshot = await snapshotUntil(started.pid, (s) => s.findings.length > 0, { extra: ['--idle-threshold', '2s'] });
  t.is(snapshot.agent.mode, 'crate');
  t.is(schemaErrors(snapshot), null);
});

test('a /proc-only snapshot conforms', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const snapshot = await snapshotOf(child.pid!);
  t.is(schemaErrors(snapshot), null);
});

test('a snapshot with tasks, their lints and a page of items conforms, and so does a watch recording', async (t) => {
  const started = await startFixture<{ pid: number }>(t, 'event_loop', ['--connections', '12', '--interval-ms', '20']);
  const snapshot = await snapshotOf(started.pid, ['--idle-threshold', '1s', '--tasks-state', 'all']);
  t.true(snapshot.tasks.tracked);
  t.true(snapshot.tasks.items.some((i) => i.state === 'completed'));
  t.true(snapshot.findings.some((f) => f.subject.kind === 'site'));
  t.is(schemaErrors(snapshot), null);
  const recorded = await runCli(['watch', String(started.pid), '--count', '2', '--interval', '200ms']);
  const lines = recorded.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { schema: string });
  const snapshots = lines.filter((l) => l.schema === 'leakscope.snapshot/1');
  t.is(snapshots.length, 2);
  for (const s of snapshots) t.is(schemaErrors(s), null);
});
