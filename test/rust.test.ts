// Rust services that link leakscope's crate (native/crate): their
// #[global_allocator] wrapped in leakscope::Tracked, the agent started from
// inside, attached by pid with no leakscope run. The fixtures (fixtures/rust)
// print their own truth.
import test from 'ava';
import { findingIds as ids, IDLE, type OwnerTruth } from './helpers/owner.js';
import { isAlive, MiB, RUST_FIXTURES, safeKill, snapshotUntil, startFixture } from './helpers/process.js';

const start = (t: Parameters<typeof startFixture>[0], binary: string) =>
  startFixture<OwnerTruth & { allocator: string }>(t, binary, ['128'], { withoutAgent: true, dir: RUST_FIXTURES });

test('MiMalloc wrapped: sleeping-owner on the loader thread with the bytes its workers freed, and it clears when the loader wakes', async (t) => {
  const fixture = await start(t, 'owner_mimalloc');
  const snapshot = await snapshotUntil(fixture.pid, (s) => ids(s).includes('sleeping-owner'), { extra: IDLE });
  t.is(snapshot.agent.mode, 'crate');
  t.is(snapshot.allocator.name, 'mimalloc');
  t.regex(snapshot.allocator.version ?? '', /^\d+\.\d+\.\d+$/);
  const findings = snapshot.findings.filter((f) => f.id === 'sleeping-owner');
  t.is(findings.length, 1, `findings: ${ids(snapshot).join(', ')}`);
  const finding = findings[0]!;
  t.is(finding.subject.kind, 'thread');
  t.is(finding.subject.id, String(fixture.truth.owner_tid));
  t.regex(finding.summary, /wait for thread loader \(tid \d+\)/);
  t.true(
    Math.abs(finding.value - fixture.truth.remote_freed_bytes) <= 0.1 * fixture.truth.remote_freed_bytes,
    `unreclaimed ${finding.value}, truth ${fixture.truth.remote_freed_bytes}`,
  );
  t.false(ids(snapshot).includes('heap-growth'));

  // The loader waits in sigwait with SIGUSR1 blocked in every thread: the
  // agent's threads block it too, so the signal reaches the loader, which
  // enters the allocator once.
  safeKill(fixture.pid, 'SIGUSR1');
  const woken = await snapshotUntil(fixture.pid, (s) => !ids(s).includes('sleeping-owner'), { extra: IDLE, timeoutMs: 10_000 });
  t.true(isAlive(fixture.pid), 'a signal the program waits for does not kill it');
  t.is(woken.threads.find((th) => th.tid === fixture.truth.owner_tid)?.heap?.unreclaimed_bytes, 0);
  t.false(ids(woken).includes('sleeping-owner'));
});

test('System wrapped: the ledger sees the same remote frees, and glibc is not judged a sleeping owner', async (t) => {
  const fixture = await start(t, 'owner_system');
  const snapshot = await snapshotUntil(
    fixture.pid,
    (s) => (s.threads.find((th) => th.tid === fixture.truth.owner_tid)?.idle_ms ?? 0) >= 3000,
    { extra: IDLE },
  );
  t.is(snapshot.agent.mode, 'crate');
  t.is(snapshot.allocator.name, 'glibc');
  const owner = snapshot.threads.find((th) => th.tid === fixture.truth.owner_tid);
  t.true((owner?.idle_ms ?? 0) >= 3000);
  t.true(
    Math.abs((owner?.heap?.remote_freed_bytes ?? 0) - fixture.truth.remote_freed_bytes) <= 0.1 * fixture.truth.remote_freed_bytes,
    `remote-freed ${owner?.heap?.remote_freed_bytes}, truth ${fixture.truth.remote_freed_bytes}`,
  );
  t.true((owner?.heap?.unreclaimed_bytes ?? 0) > 100 * MiB, 'the ledger still measures the remote frees');
  t.false(ids(snapshot).includes('sleeping-owner'));
});
