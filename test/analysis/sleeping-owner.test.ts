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

test('fires on an idle owner thread under mimalloc, with the bytes and the thread', (t) => {
  const o = observation((d) => {
    d.allocator.name = 'mimalloc';
    d.threads.push(loader(120 * MiB, 60_000));
  });
  const result = check(o, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  const [finding] = result.findings;
  t.is(finding?.subject.id, '7');
  t.is(finding?.value, 120 * MiB);
  t.is(finding?.severity, 'error');
  t.is(finding?.summary, '120.0 MiB freed by other threads wait for thread loader (tid 7), idle for 60 s');
  t.regex(finding!.message, /started at load_index \(svc\)/);
  t.regex(finding!.remedy, /mi_collect/);
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
