// The retention detectors on real allocators: each fires on its fixture,
// on the right subject, and stays quiet on its control.
import test from 'ava';
import { findingIds as ids, IDLE, type OwnerTruth } from './helpers/owner.js';
import { MiB, runCli, safeKill, snapshotOf, snapshotUntil, startFixture } from './helpers/process.js';

// Under sampled counts the owner's one malloc on waking is seen through its
// sampling countdown, which the agent reads from the thread's TLS.
for (const counts of ['exact', 'sampled'] as const) {
  test(`sleeping-owner fires under mimalloc on the loader thread, and clears when it wakes (counts ${counts})`, async (t) => {
    const fixture = await startFixture<OwnerTruth>(t, 'sleeping_owner', ['128'], { allocator: 'mimalloc', counts });
    // retention decides once live bytes have been flat for a few samples after the build.
    const snapshot = await snapshotUntil(fixture.pid, (s) => ids(s).includes('sleeping-owner') && ids(s).includes('retention'), {
      extra: IDLE,
    });
    const finding = snapshot.findings.find((f) => f.id === 'sleeping-owner');
    t.truthy(finding, `findings: ${ids(snapshot).join(', ')}`);
    t.is(finding!.subject.kind, 'thread');
    t.is(finding!.subject.id, String(fixture.truth.owner_tid));
    t.is(snapshot.findings.filter((f) => f.id === 'sleeping-owner').length, 1);
    t.true(
      Math.abs(finding!.value - fixture.truth.remote_freed_bytes) <= 0.1 * fixture.truth.remote_freed_bytes,
      `unreclaimed ${finding!.value}, truth ${fixture.truth.remote_freed_bytes}`,
    );
    t.regex(finding!.summary, /freed by other threads wait for thread loader \(tid \d+\)/);
    t.true(ids(snapshot).includes('retention'));
    t.false(ids(snapshot).includes('heap-growth'));

    // The owner enters the allocator once: what waited for it counts as reclaimed.
    safeKill(fixture.pid, 'SIGUSR1');
    const woken = await snapshotUntil(fixture.pid, (s) => !ids(s).includes('sleeping-owner'), { extra: IDLE, timeoutMs: 10_000 });
    const owner = woken.threads.find((th) => th.tid === fixture.truth.owner_tid);
    t.is(owner?.heap?.unreclaimed_bytes, 0);
    t.false(ids(woken).includes('sleeping-owner'));
  });
}

for (const allocator of ['glibc', 'jemalloc'] as const) {
  test(`sleeping-owner stays quiet under ${allocator}`, async (t) => {
    const fixture = await startFixture<OwnerTruth>(t, 'sleeping_owner', ['128'], { allocator });
    // Wait until the owner has been idle past the threshold, so quiet means quiet.
    const snapshot = await snapshotUntil(
      fixture.pid,
      (s) => (s.threads.find((th) => th.tid === fixture.truth.owner_tid)?.idle_ms ?? 0) >= 3000,
      { extra: IDLE },
    );
    const owner = snapshot.threads.find((th) => th.tid === fixture.truth.owner_tid);
    t.true((owner?.idle_ms ?? 0) >= 3000);
    t.true((owner?.heap?.remote_freed_bytes ?? 0) > 100 * MiB, 'the ledger still measures the remote frees');
    t.is(owner?.heap?.unreclaimed_bytes, null, `${allocator} has no owner to wait for`);
    t.false(ids(snapshot).includes('sleeping-owner'));
  });
}

interface BurstTruth {
  pid: number;
  burst_bytes: number;
  survivor_bytes: number;
}

test('arena-fragmentation fires on a fragmented glibc heap, and reclaim gives pages back', async (t) => {
  const fixture = await startFixture<BurstTruth>(t, 'arena_burst');
  const snapshot = await snapshotOf(fixture.pid, IDLE);
  const finding = snapshot.findings.find((f) => f.id === 'arena-fragmentation');
  t.truthy(finding, `findings: ${ids(snapshot).join(', ')}`);
  t.is(finding!.subject.kind, 'arena');
  // Retained is bounded by what the burst left behind and by RSS beyond live data.
  const freedByBurst = fixture.truth.burst_bytes - fixture.truth.survivor_bytes;
  t.true(finding!.value >= 0.8 * freedByBurst && finding!.value <= 1.1 * freedByBurst, `retained ${finding!.value}, freed ${freedByBurst}`);
  t.regex(finding!.remedy, /leakscope reclaim \d+/);
  t.true(snapshot.allocator.arenas.length >= 5, 'the main arena and one per burst thread');

  const reclaim = await runCli(['reclaim', String(fixture.pid), '--json']);
  t.is(reclaim.code, 0, reclaim.stderr);
  const result = JSON.parse(reclaim.stdout) as { action: string; before_rss_bytes: number; after_rss_bytes: number };
  t.is(result.action, 'malloc_trim(0)');
  // 256-byte survivors every 64 blocks pin one page in four: at least half the burst comes back.
  t.true(result.before_rss_bytes - result.after_rss_bytes >= 0.5 * freedByBurst, JSON.stringify(result));
  t.true(fixture.alive());
});

test('arena-fragmentation stays quiet on a compact glibc heap', async (t) => {
  const fixture = await startFixture<BurstTruth>(t, 'arena_burst', ['--compact']);
  const snapshot = await snapshotOf(fixture.pid, IDLE);
  t.deepEqual(
    snapshot.findings.filter((f) => f.id === 'arena-fragmentation' || f.id === 'retention'),
    [],
  );
  t.true(snapshot.allocator.arenas.length >= 5);
});

interface ArenaTruth {
  pid: number;
  worker_tid: number;
  burst_bytes: number;
}

test('idle-dirty-pages fires on an idle jemalloc arena, and a purge returns it', async (t) => {
  const fixture = await startFixture<ArenaTruth>(t, 'idle_arena', [], { allocator: 'jemalloc' });
  const snapshot = await snapshotUntil(fixture.pid, (s) => ids(s).includes('idle-dirty-pages'), { extra: IDLE });
  const finding = snapshot.findings.find((f) => f.id === 'idle-dirty-pages');
  t.truthy(finding, `findings: ${ids(snapshot).join(', ')}`);
  t.is(finding!.subject.kind, 'arena');
  t.true(Math.abs(finding!.value - fixture.truth.burst_bytes) <= 0.1 * fixture.truth.burst_bytes);
  t.is(snapshot.allocator.background_thread, false);

  const reclaim = await runCli(['reclaim', String(fixture.pid), '--json']);
  const result = JSON.parse(reclaim.stdout) as { before_rss_bytes: number; after_rss_bytes: number };
  t.true(result.before_rss_bytes - result.after_rss_bytes >= 0.8 * fixture.truth.burst_bytes, JSON.stringify(result));
  const after = await snapshotOf(fixture.pid, IDLE);
  t.false(ids(after).includes('idle-dirty-pages'));
});

test('idle-dirty-pages stays quiet with jemalloc background threads on', async (t) => {
  const fixture = await startFixture<ArenaTruth>(t, 'idle_arena', [], {
    allocator: 'jemalloc',
    env: { MALLOC_CONF: 'background_thread:true,dirty_decay_ms:1000' },
  });
  const snapshot = await snapshotUntil(fixture.pid, (s) => s.history.length >= 4, { extra: IDLE });
  t.is(snapshot.allocator.background_thread, true);
  t.false(ids(snapshot).includes('idle-dirty-pages'));
});
