// The heap ledger against the fixtures' own ground truth.
import test from 'ava';
import { runCli, snapshotOf, startFixture } from './helpers/process.js';

interface ThreadTruth {
  tid: number;
  alloc_count: number;
  allocated_bytes: number;
  free_count: number;
  freed_bytes: number;
  remote_freed_bytes: number;
}

for (const allocator of ['glibc', 'jemalloc', 'mimalloc'] as const) {
  test(`exact mode: every thread's counts equal the fixture's (${allocator})`, async (t) => {
    const fixture = await startFixture<{ pid: number; producer: ThreadTruth; consumer: ThreadTruth }>(t, 'exact_ledger', [], {
      allocator,
      sampleInterval: 'exact',
    });
    const snapshot = await snapshotOf(fixture.pid);
    t.is(snapshot.agent.sample_bytes, 0);
    t.is(snapshot.agent.sample_store, allocator === 'glibc' ? 'headers' : 'table');
    t.is(snapshot.allocator.name, allocator);
    for (const role of ['producer', 'consumer'] as const) {
      const truth = fixture.truth[role];
      const thread = snapshot.threads.find((th) => th.tid === truth.tid);
      t.truthy(thread?.heap, `${role} thread ${truth.tid} is in the snapshot with a heap`);
      const heap = thread!.heap!;
      t.deepEqual(
        {
          alloc_count: heap.alloc_count,
          allocated_bytes: heap.allocated_bytes,
          free_count: heap.free_count,
          freed_bytes: heap.freed_bytes,
          remote_freed_bytes: heap.remote_freed_bytes,
        },
        {
          alloc_count: truth.alloc_count,
          allocated_bytes: truth.allocated_bytes,
          free_count: truth.free_count,
          freed_bytes: truth.freed_bytes,
          remote_freed_bytes: truth.remote_freed_bytes,
        },
        role,
      );
      t.is(thread!.start_routine, `${role}_main (exact_ledger)`);
    }
    const producer = snapshot.threads.find((th) => th.tid === fixture.truth.producer.tid)!;
    // The producer parked right after the hand-off: nothing was reclaimed.
    t.is(producer.heap!.unreclaimed_bytes, fixture.truth.producer.remote_freed_bytes);
    t.is(producer.heap!.live_bytes, 0);
    t.is(producer.creator_tid, fixture.pid);
  });
}

// Sampled blocks carry their owner in a header under glibc, and sit in the
// agent's table under mimalloc: both estimate alike.
for (const allocator of ['mimalloc', 'glibc'] as const) {
  test(`sampled mode: remote-freed bytes within 10% of 128 MiB (${allocator})`, async (t) => {
    const fixture = await startFixture<{ pid: number; owner_tid: number; remote_freed_bytes: number }>(t, 'sleeping_owner', ['128'], {
      allocator,
    });
    const snapshot = await snapshotOf(fixture.pid);
    t.true(snapshot.agent.sample_bytes! > 0);
    t.is(snapshot.agent.sample_store, allocator === 'glibc' ? 'headers' : 'table');
    const owner = snapshot.threads.find((th) => th.tid === fixture.truth.owner_tid);
    const measured = owner?.heap?.remote_freed_bytes ?? 0;
    const truth = fixture.truth.remote_freed_bytes;
    t.true(truth >= 100 * 1024 * 1024);
    t.true(Math.abs(measured - truth) <= 0.1 * truth, `measured ${measured}, truth ${truth}`);
    t.is(snapshot.agent.dropped_events, 0);
  });
}

test('the human report names the allocator and the thread table', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'exact_ledger', [], { sampleInterval: 'exact' });
  const result = await runCli(['snapshot', String(fixture.pid)]);
  t.is(result.code, 0);
  t.regex(result.stdout, /allocator: glibc 2\.\d+/);
  t.regex(result.stdout, /^Threads:$/m);
  t.regex(result.stdout, /verdict: /);
});
