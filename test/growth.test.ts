// heap-growth and thread-growth need history: each waits for the detector to
// decide (about 30 s) and checks the control decided too, the other way.
import test from 'ava';
import type { Snapshot } from '../src/model/snapshot.js';
import { snapshotUntil, startFixture } from './helpers/process.js';

const decided = (id: string) => (s: Snapshot) => !s.pending_checks.some((p) => p.id === id);
const ids = (s: Snapshot) => s.findings.map((f) => f.id);

// Live bytes come from the ledger: counted exactly (--counts exact), or
// estimated from the samples (the default).
for (const counts of ['exact', 'sampled'] as const) {
  test(`heap-growth fires on a growing heap at about the leak rate (counts ${counts})`, async (t) => {
    const fixture = await startFixture<{ pid: number; leak_bytes_per_s: number }>(t, 'growing_leak', [], { counts });
    const snapshot = await snapshotUntil(fixture.pid, decided('heap-growth'));
    const finding = snapshot.findings.find((f) => f.id === 'heap-growth');
    t.truthy(finding, `findings: ${ids(snapshot).join(', ')}; pending: ${JSON.stringify(snapshot.pending_checks)}`);
    t.is(finding!.unit, 'bytes_per_s');
    const rate = fixture.truth.leak_bytes_per_s;
    // The fixture sleeps 100 ms between rounds, so it leaks a little slower than its nominal rate.
    t.true(finding!.value >= 0.7 * rate && finding!.value <= 1.1 * rate, `measured ${finding!.value}/s, nominal ${rate}/s`);
    t.is(finding!.severity, 'error');
    t.false(ids(snapshot).includes('retention'));
  });

  test(`heap-growth stays quiet on a program that churns but keeps nothing (counts ${counts})`, async (t) => {
    const fixture = await startFixture<{ pid: number }>(t, 'growing_leak', ['--steady'], { counts });
    const snapshot = await snapshotUntil(fixture.pid, decided('heap-growth'));
    t.true(decided('heap-growth')(snapshot));
    t.false(ids(snapshot).includes('heap-growth'));
  });
}

test('thread-growth fires on a thread leak and names the start routine', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'thread_leak');
  const snapshot = await snapshotUntil(fixture.pid, decided('thread-growth'));
  const finding = snapshot.findings.find((f) => f.id === 'thread-growth');
  t.truthy(finding, `findings: ${ids(snapshot).join(', ')}`);
  t.true(finding!.value >= 8);
  t.regex(finding!.message, /run stuck_main \(thread_leak\)/);
});

test('thread-growth stays quiet when threads are joined', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'thread_leak', ['--steady']);
  const snapshot = await snapshotUntil(fixture.pid, decided('thread-growth'));
  t.true(decided('thread-growth')(snapshot));
  t.false(ids(snapshot).includes('thread-growth'));
});
