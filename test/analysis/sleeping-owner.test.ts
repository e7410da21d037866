import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check, MIN_UNRECLAIMED_BYTES } from '../../src/analysis/findings/sleeping-owner.js';
import { MiB, observation, thread } from '../helpers/observation.js';

const heap = (unreclaimed: number) => ({
  alloc_count: 10, allocated_bytes: 200 * MiB, free_count: 0, freed_bytes: 0,
  live_bytes: 0, remote_freed_bytes: unreclaimed, unreclaimed_bytes: unreclaimed,
});

const loader = (unreclaimed: number, idleMs: number) =>
  thread({ tid: 7, name: 'loader', idle_ms: idleMs, start_routine: 'load_index (svc)', heap: heap(unreclaimed) });

/** A mimalloc process holding `anon` of anonymous memory for 2 MiB live. */
const mimalloc = (version: string, anon: number, ...owners: ReturnType<typeof loader>[]) =>
  observation((d) => {
    d.allocator.name = 'mimalloc';
    d.allocator.version = version;
    d.allocator.live_bytes = 2 * MiB;
    d.process.rss_bytes = anon + 4 * MiB;
    d.process.memory = { anon_bytes: anon, file_bytes: 4 * MiB, shmem_bytes: 0, swap_bytes: 0 };
    d.threads.push(...owners);
  });

test('fires on an idle owner thread under mimalloc, with the bytes and the thread', (t) => {
  const o = mimalloc('2.0.9', 126 * MiB, loader(120 * MiB, 60_000));
  const result = check(o, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  const [finding] = result.findings;
  t.is(finding?.subject.id, '7');
  t.is(finding?.value, 120 * MiB);
  t.is(finding?.severity, 'error');
  t.is(finding?.summary, '120.0 MiB freed by other threads wait for thread loader (tid 7), idle for 60 s');
  t.regex(finding!.message, /started at load_index \(svc\)/);
  t.regex(finding!.remedy, /mi_collect/);
  t.deepEqual(finding?.measured, { bytes: 120 * MiB, source: 'RssAnon − live (ledger), shared among 1 idle owner' });
  t.is(finding?.modelled_bytes, 120 * MiB);
});

test('the measurement bounds the model: no more than the process holds beyond live data, shared among the owners', (t) => {
  const second = thread({ tid: 8, name: 'loader-2', idle_ms: 60_000, heap: heap(40 * MiB) });
  const result = check(mimalloc('2.0.9', 82 * MiB, loader(120 * MiB, 60_000), second), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  // 80 MiB held beyond the 2 MiB live, for 160 MiB modelled: each owner gets half its model.
  t.deepEqual(result.findings.map((f) => [f.subject.id, f.value, f.modelled_bytes]), [['7', 60 * MiB, 120 * MiB], ['8', 20 * MiB, 40 * MiB]]);
  t.regex(result.findings[0]!.message, /the agent counted 120\.0 MiB waiting; the process holds only 80\.0 MiB beyond its live data/);
});

test('mimalloc 2.1 and later: one call gives back only part, so what the owner saw freed is the model, bounded by the measurement', (t) => {
  const owner = thread({ tid: 7, name: 'loader', idle_ms: 60_000, heap: { ...heap(0), remote_freed_bytes: 192 * MiB, unreclaimed_bytes: null } });
  const result = check(mimalloc('2.3.2', 250 * MiB, owner), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 192 * MiB);
  t.regex(result.findings[0]!.message, /gives such blocks back page by page/);
});

test('mimalloc 3: nothing waits for the owner; quiet, whatever the ledger says', (t) => {
  t.deepEqual(check(mimalloc('3.3.2', 150 * MiB, loader(120 * MiB, 60_000)), DEFAULT_THRESHOLDS), { status: 'ok' });
});

test('quiet under glibc and jemalloc, whatever the ledger says', (t) => {
  for (const name of ['glibc', 'jemalloc'] as const) {
    const o = observation((d) => {
      d.allocator.name = name;
      d.threads.push(loader(120 * MiB, 60_000));
    });
    t.deepEqual(check(o, DEFAULT_THRESHOLDS), { status: 'ok' });
  }
});

test('quiet while the owner is busy, or holds little', (t) => {
  const busy = observation((d) => {
    d.allocator.name = 'mimalloc';
    d.threads.push(loader(120 * MiB, 1_000));
  });
  t.is(check(busy, DEFAULT_THRESHOLDS).status, 'ok');
  const small = observation((d) => {
    d.allocator.name = 'mimalloc';
    d.threads.push(loader(MIN_UNRECLAIMED_BYTES - 1, 60_000));
  });
  t.is(check(small, DEFAULT_THRESHOLDS).status, 'ok');
});

test('the idle threshold is the caller’s', (t) => {
  const o = observation((d) => {
    d.allocator.name = 'mimalloc';
    d.threads.push(loader(20 * MiB, 5_000));
  });
  t.is(check(o, { idleMs: 10_000 }).status, 'ok');
  t.is(check(o, { idleMs: 2_000 }).status, 'found');
});

test('undecided without an agent', (t) => {
  const o = observation((d) => {
    d.allocator.name = 'mimalloc';
    d.agent.mode = 'proc';
  });
  t.is(check(o, DEFAULT_THRESHOLDS).status, 'undecided');
});
