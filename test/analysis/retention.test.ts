import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check } from '../../src/analysis/findings/retention.js';
import { type Draft, history, MiB, nodeRuntime, observation } from '../helpers/observation.js';

test('fires when RSS is far above flat live bytes, naming where the allocator keeps it', (t) => {
  const o = observation((d) => {
    d.allocator.name = 'mimalloc';
    d.allocator.live_bytes = 10 * MiB;
    d.process.rss_bytes = 150 * MiB;
    d.history = history(5, () => 10 * MiB);
  });
  const result = check(o, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 140 * MiB);
  t.regex(result.findings[0]!.message, /mimalloc pages holding blocks that other threads freed, until their owner threads take them back/);
  t.false(/see [a-z-]+/.test(result.findings[0]!.message), 'it names no finding that may not have fired');
});

test('quiet while live bytes move, or when RSS is mostly live', (t) => {
  const moving = observation((d) => {
    d.allocator.live_bytes = 10 * MiB;
    d.process.rss_bytes = 150 * MiB;
    d.history = history(5, (s) => s * 20 * MiB);
  });
  t.is(check(moving, DEFAULT_THRESHOLDS).status, 'ok');
  const live = observation((d) => {
    d.allocator.live_bytes = 100 * MiB;
    d.process.rss_bytes = 180 * MiB;
    d.history = history(5, () => 100 * MiB);
  });
  t.is(check(live, DEFAULT_THRESHOLDS).status, 'ok');
});

test('a burst that has passed does not hide retention now', (t) => {
  const o = observation((d) => {
    d.allocator.live_bytes = 10 * MiB;
    d.process.rss_bytes = 150 * MiB;
    d.history = history(20, (s) => (s === 3 ? 130 * MiB : 10 * MiB));
  });
  t.is(check(o, DEFAULT_THRESHOLDS).status, 'found');
});

test("a Node process: V8's heaps are not the allocator's to keep", (t) => {
  const node = (v8Total: number) =>
    observation((d) => {
      d.allocator.live_bytes = 10 * MiB;
      d.process.rss_bytes = 150 * MiB;
      d.history = history(5, () => 10 * MiB);
      d.node = nodeRuntime(v8Total) as Draft['node'];
    });
  t.is(check(node(100 * MiB), DEFAULT_THRESHOLDS).status, 'ok', '40 MiB beside live and V8 is below the threshold');
  const result = check(node(20 * MiB), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 120 * MiB);
  t.regex(result.findings[0]!.message, /^Measured: RSS 150\.0 MiB, live 10\.0 MiB \(ledger\), V8 heaps 20\.0 MiB/);
});

test('file-backed pages are not retention: the amount is anonymous RSS less live', (t) => {
  const o = observation((d) => {
    d.allocator.live_bytes = 10 * MiB;
    d.process.rss_bytes = 400 * MiB;
    d.process.memory = { anon_bytes: 60 * MiB, file_bytes: 340 * MiB, shmem_bytes: 0, swap_bytes: 0 };
    d.history = history(5, () => 10 * MiB);
  });
  t.is(check(o, DEFAULT_THRESHOLDS).status, 'ok', '50 MiB of anonymous memory beside live: below the threshold');
  const held = observation((d) => {
    d.allocator.live_bytes = 10 * MiB;
    d.process.rss_bytes = 400 * MiB;
    d.process.memory = { anon_bytes: 110 * MiB, file_bytes: 290 * MiB, shmem_bytes: 0, swap_bytes: 0 };
    d.allocator.stats = { 'mallinfo2.free_bytes': 95 * MiB };
    d.history = history(5, () => 10 * MiB);
  });
  const result = check(held, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 100 * MiB);
  t.deepEqual(result.findings[0]?.measured, { bytes: 100 * MiB, source: 'RssAnon − live (ledger)' });
  t.regex(result.findings[0]!.message, /^Measured: anonymous RSS 110\.0 MiB, live 10\.0 MiB \(ledger\) \(RSS 400\.0 MiB; file-backed pages, code and mapped files, are not counted\)/);
  t.regex(result.findings[0]!.message, /glibc counts 95\.0 MiB free: mallinfo2/);
});

test("a late ledger under glibc: live bytes from glibc's own count (mallinfo2)", (t) => {
  const o = observation((d) => {
    d.allocator.live_bytes = 1 * MiB;
    d.allocator.counted_since = '2026-11-22T00:00:00.000Z';
    d.allocator.stats = { 'mallinfo2.in_use_bytes': 12 * MiB, 'mallinfo2.mmap_bytes': 8 * MiB };
    d.process.memory = { anon_bytes: 150 * MiB, file_bytes: 40 * MiB, shmem_bytes: 0, swap_bytes: 0 };
  });
  const result = check(o, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 130 * MiB);
  t.regex(result.findings[0]!.message, /live 20\.0 MiB \(mallinfo2\)/);
});

test('undecided when live bytes are counted from a late attach only', (t) => {
  const o = observation((d) => {
    d.allocator.live_bytes = 10 * MiB;
    d.allocator.counted_since = '2026-11-22T00:00:00.000Z';
    d.allocator.name = 'mimalloc';
    d.process.rss_bytes = 150 * MiB;
    d.history = history(5, () => 10 * MiB);
  });
  t.is(check(o, DEFAULT_THRESHOLDS).status, 'undecided', 'mimalloc states no live bytes of its own');
});

test('undecided without history', (t) => {
  t.is(check(observation(), DEFAULT_THRESHOLDS).status, 'undecided');
});

test('"flat for" is how long live bytes have stayed level, not the length of the window that judges it', (t) => {
  const since = (samples: number, burstAt: number | null) =>
    observation((d) => {
      d.allocator.live_bytes = 10 * MiB;
      d.process.rss_bytes = 150 * MiB;
      d.history = history(samples, (s) => (s === burstAt ? 130 * MiB : 10 * MiB));
    });
  const flatMessage = (o: ReturnType<typeof since>) => {
    const result = check(o, DEFAULT_THRESHOLDS);
    return result.status === 'found' ? result.findings[0]!.message : result.status;
  };
  t.regex(flatMessage(since(20, null)), /live bytes have been flat for 19 s\./);
  t.regex(flatMessage(since(20, 3)), /live bytes have been flat for 15 s\./); // from the sample after the burst
  t.regex(flatMessage(since(5, null)), /live bytes have been flat for 4 s\./);
});

test('the remedy rests on the allocator\'s numbers here, not on findings that may not have fired', (t) => {
  const jemalloc = observation((d) => {
    d.allocator.name = 'jemalloc';
    d.allocator.live_bytes = 10 * MiB;
    d.process.rss_bytes = 150 * MiB;
    d.allocator.stats = { active_bytes: 40 * MiB, allocated_bytes: 10 * MiB };
    d.history = history(5, () => 10 * MiB);
  });
  const result = check(jemalloc, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.regex(result.findings[0]!.remedy, /purges jemalloc's dirty pages \(0 B now\); the 30\.0 MiB free inside slabs that still hold live blocks does not go back by purging/);
  for (const allocator of ['jemalloc', 'mimalloc'] as const) {
    const o = observation((d) => {
      d.allocator.name = allocator;
      d.allocator.version = allocator === 'mimalloc' ? '2.0.9' : '5.3.0';
      d.allocator.live_bytes = 10 * MiB;
      d.process.rss_bytes = 150 * MiB;
      d.history = history(5, () => 10 * MiB);
    });
    const found = check(o, DEFAULT_THRESHOLDS);
    if (found.status !== 'found') return t.fail(found.status);
    t.notRegex(found.findings[0]!.remedy, /findings/, `${allocator}: ${found.findings[0]!.remedy}`);
  }
});
