// Real snapshots, with an agent and without, conform to the documented
// schema (docs/snapshot.schema.json).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { spawn } from 'node:child_process';
import test from 'ava';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { PACKAGE_ROOT } from '../src/paths.js';
import { runCli, RUST_FIXTURES, snapshotOf, snapshotUntil, startFixture } from './helpers/process.js';

const schema = JSON.parse(readFileSync(resolve(PACKAGE_ROOT, 'docs/snapshot.schema.json'), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: false });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
const validate = ajv.compile(schema);

test('a snapshot with findings, under each allocator, conforms', async (t) => {
  for (const [fixture, allocator] of [['sleeping_owner', 'mimalloc'], ['arena_burst', 'glibc'], ['idle_arena', 'jemalloc']] as const) {
    const started = await startFixture<{ pid: number }>(t, fixture, [], { allocator });
    const snapshot = await snapshotUntil(started.pid, (s) => s.findings.length > 0, { extra: ['--idle-threshold', '2s'] });
    t.true(snapshot.findings.length > 0, fixture);
    t.true(validate(snapshot), `${fixture}: ${ajv.errorsText(validate.errors)}`);
  }
});

test('a snapshot of a Node service, attached by pid and under leakscope run, conforms', async (t) => {
  for (const underRun of [false, true]) {
    const started = await startFixture<{ pid: number; port: number }>(t, 'service.mjs', [], {
      withoutAgent: !underRun,
      dir: resolve(PACKAGE_ROOT, 'fixtures/node'),
      interpreter: process.execPath,
    });
    await fetch(`http://127.0.0.1:${started.truth.port}/cart`);
    const snapshot = await snapshotUntil(started.pid, (s) => s.findings.length > 0, { extra: ['--idle-threshold', '1s'] });
    t.truthy(snapshot.node, 'the Node part is there');
    t.true(validate(snapshot), `${underRun ? 'run' : 'attached'}: ${ajv.errorsText(validate.errors)}`);
  }
});

test('a snapshot from a Rust service through the crate conforms', async (t) => {
  const started = await startFixture<{ pid: number }>(t, 'owner_mimalloc', ['16'], { withoutAgent: true, dir: RUST_FIXTURES });
  const snapshot = await snapshotUntil(started.pid, (s) => s.findings.length > 0, { extra: ['--idle-threshold', '2s'] });
  t.is(snapshot.agent.mode, 'crate');
  t.true(validate(snapshot), ajv.errorsText(validate.errors));
});

test('a /proc-only snapshot conforms', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const snapshot = await snapshotOf(child.pid!);
  t.true(validate(snapshot), ajv.errorsText(validate.errors));
});

test('a snapshot with tasks, their lints and a page of items conforms, and so does a watch recording', async (t) => {
  const started = await startFixture<{ pid: number }>(t, 'event_loop', ['--connections', '12', '--interval-ms', '20']);
  const snapshot = await snapshotOf(started.pid, ['--idle-threshold', '1s', '--tasks-state', 'all']);
  t.true(snapshot.tasks.tracked);
  t.true(snapshot.tasks.items.some((i) => i.state === 'completed'));
  t.true(snapshot.findings.some((f) => f.subject.kind === 'site'));
  t.true(validate(snapshot), ajv.errorsText(validate.errors));
  const recorded = await runCli(['watch', String(started.pid), '--count', '2', '--interval', '200ms']);
  const lines = recorded.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { schema: string });
  const snapshots = lines.filter((l) => l.schema === 'leakscope.snapshot/1');
  t.is(snapshots.length, 2);
  for (const s of snapshots) t.true(validate(s), ajv.errorsText(validate.errors));
});
