// Rust services that link leakscope's crate (native/crate): their
// #[global_allocator] wrapped in leakscope::Tracked, the agent started from
// inside, attached by pid with no leakscope run. The fixtures (fixtures/rust)
// print their own truth.
import test from 'ava';
import { findingIds as ids, IDLE, type OwnerTruth } from './helpers/owner.js';
import { isAlive, MiB, runCli, RUST_FIXTURES, RUST_MIMALLOC_V2_FIXTURES, safeKill, snapshotOf, snapshotUntil, startFixture } from './helpers/process.js';

interface JemallocTruth extends OwnerTruth {
  owner_arena: number;
  owner_arena_dirty_bytes: number;
}

const start = <Truth extends OwnerTruth = OwnerTruth>(t: Parameters<typeof startFixture>[0], binary: string, env: NodeJS.ProcessEnv = {}) =>
  startFixture<Truth & { allocator: string }>(t, binary, ['128'], { withoutAgent: true, dir: RUST_FIXTURES, env });

test('MiMalloc wrapped (the crate builds mimalloc 3): nothing waits for the owner, so no sleeping-owner; what RSS holds is measured retention, and the loader waking gives none of it back', async (t) => {
  const fixture = await start(t, 'owner_mimalloc');
  const ownerIdle = (s: Parameters<typeof ids>[0]) => (s.threads.find((th) => th.tid === fixture.truth.owner_tid)?.idle_ms ?? 0) >= 3000;
  const snapshot = await snapshotUntil(fixture.pid, (s) => ownerIdle(s) && ids(s).includes('retention'), { extra: IDLE });
  t.is(snapshot.agent.mode, 'crate');
  t.is(snapshot.allocator.name, 'mimalloc');
  t.regex(snapshot.allocator.version ?? '', /^3\.\d+\.\d+$/);
  t.false(ids(snapshot).includes('sleeping-owner'), `findings: ${ids(snapshot).join(', ')}`);
  const owner = snapshot.threads.find((th) => th.tid === fixture.truth.owner_tid);
  t.is(owner?.heap?.unreclaimed_bytes, null, 'mimalloc 3 has no per-owner state to model');
  t.true(
    Math.abs((owner?.heap?.remote_freed_bytes ?? 0) - fixture.truth.remote_freed_bytes) <= 0.1 * fixture.truth.remote_freed_bytes,
    `remote-freed ${owner?.heap?.remote_freed_bytes}, truth ${fixture.truth.remote_freed_bytes}`,
  );
  const retention = snapshot.findings.find((f) => f.id === 'retention')!;
  const memory = snapshot.process.memory!;
  t.is(retention.value, memory.anon_bytes - snapshot.allocator.live_bytes!, 'the amount is anonymous RSS less live');
  t.true(retention.value >= 0.9 * fixture.truth.remote_freed_bytes, `${retention.value} retained for ${fixture.truth.remote_freed_bytes} freed`);
  t.is(snapshot.verdict.cause, 'allocator-retention');

  // The loader waits in sigwait with SIGUSR1 blocked in every thread: the
  // agent's threads block it too, so the signal reaches the loader, which
  // enters the allocator once. Under mimalloc 3 that gives nothing back:
  // sleeping-owner's silence is right.
  safeKill(fixture.pid, 'SIGUSR1');
  await new Promise((r) => setTimeout(r, 2000));
  const woken = await snapshotOf(fixture.pid, IDLE);
  t.true(isAlive(fixture.pid), 'a signal the program waits for does not kill it');
  const after = woken.findings.find((f) => f.id === 'retention');
  t.true(!!after && after.value >= 0.95 * retention.value, `retained ${after?.value} after the wake-up, ${retention.value} before`);
});

test('MiMalloc built as mimalloc 2 (v2 feature, 2.3.2): sleeping-owner on the loader, within 25% of what the workers freed and no more than RSS holds beyond live data', async (t) => {
  const fixture = await startFixture<OwnerTruth & { allocator: string }>(t, 'owner_mimalloc_v2', ['128'], { withoutAgent: true, dir: RUST_MIMALLOC_V2_FIXTURES });
  const snapshot = await snapshotUntil(fixture.pid, (s) => ids(s).includes('sleeping-owner'), { extra: IDLE });
  t.regex(snapshot.allocator.version ?? '', /^2\.[1-9]\d*\.\d+$/);
  const finding = snapshot.findings.find((f) => f.id === 'sleeping-owner');
  t.truthy(finding, `findings: ${ids(snapshot).join(', ')}`);
  t.is(finding!.subject.id, String(fixture.truth.owner_tid));
  const truth = fixture.truth.remote_freed_bytes;
  t.true(Math.abs(finding!.value - truth) <= 0.25 * truth, `sleeping-owner ${finding!.value}, freed ${truth}`);
  const memory = snapshot.process.memory!;
  t.true(finding!.value <= memory.anon_bytes - snapshot.allocator.live_bytes!, 'bounded by anonymous RSS less live');
  t.is(snapshot.threads.find((th) => th.tid === fixture.truth.owner_tid)?.heap?.unreclaimed_bytes, null, 'one call does not take it all back: no exact model');
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
  t.true((owner?.heap?.remote_freed_bytes ?? 0) > 100 * MiB, 'the ledger still measures the remote frees');
  t.is(owner?.heap?.unreclaimed_bytes, null, 'glibc has no owner to wait for');
  t.false(ids(snapshot).includes('sleeping-owner'));
});

test('tikv-jemallocator wrapped: idle-dirty-pages on the loader\'s arena, and a purge gives the pages back', async (t) => {
  const fixture = await start<JemallocTruth>(t, 'owner_jemalloc');
  const truth = fixture.truth;
  t.true(truth.owner_arena_dirty_bytes >= 32 * MiB, `the loader's arena holds ${truth.owner_arena_dirty_bytes} dirty bytes`);
  const snapshot = await snapshotUntil(fixture.pid, (s) => ids(s).includes('idle-dirty-pages'), { extra: IDLE });
  t.is(snapshot.agent.mode, 'crate');
  t.is(snapshot.allocator.name, 'jemalloc');
  t.is(snapshot.allocator.background_thread, false);
  const findings = snapshot.findings.filter((f) => f.id === 'idle-dirty-pages');
  t.deepEqual(
    findings.map((f) => [f.subject.kind, f.subject.id]),
    [['arena', String(truth.owner_arena)]],
    `findings: ${ids(snapshot).join(', ')}`,
  );
  t.true(
    Math.abs(findings[0]!.value - truth.owner_arena_dirty_bytes) <= 0.1 * truth.owner_arena_dirty_bytes,
    `dirty ${findings[0]!.value}, truth ${truth.owner_arena_dirty_bytes}`,
  );
  t.false(ids(snapshot).includes('sleeping-owner'), 'jemalloc takes frees back from any thread');

  const reclaim = await runCli(['reclaim', String(fixture.pid), '--json']);
  const result = JSON.parse(reclaim.stdout) as { before_rss_bytes: number; after_rss_bytes: number };
  t.true(result.before_rss_bytes - result.after_rss_bytes >= 0.8 * truth.owner_arena_dirty_bytes, JSON.stringify(result));
  t.false(ids(await snapshotOf(fixture.pid, IDLE)).includes('idle-dirty-pages'));
  t.true(isAlive(fixture.pid));
});

test('tikv-jemallocator wrapped, background threads on: the idle arena decays and nothing fires', async (t) => {
  // tikv-jemallocator's jemalloc is prefixed, and so is its configuration variable.
  const fixture = await start<JemallocTruth>(t, 'owner_jemalloc', { _RJEM_MALLOC_CONF: 'background_thread:true,dirty_decay_ms:1000' });
  const snapshot = await snapshotUntil(fixture.pid, (s) => s.history.length >= 4, { extra: IDLE });
  t.is(snapshot.allocator.background_thread, true);
  t.false(ids(snapshot).includes('idle-dirty-pages'));
});
