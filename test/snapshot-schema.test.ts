// Real snapshots, with an agent and without, conform to the documented
// schema (docs/snapshot.schema.json).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { spawn } from 'node:child_process';
import test from 'ava';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { PACKAGE_ROOT } from '../src/paths.js';
import { snapshotOf, snapshotUntil, startFixture } from './helpers/process.js';

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

test('a /proc-only snapshot conforms', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const snapshot = await snapshotOf(child.pid!);
  t.true(validate(snapshot), ajv.errorsText(validate.errors));
});
