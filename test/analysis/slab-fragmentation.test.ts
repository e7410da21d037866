import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check } from '../../src/analysis/findings/slab-fragmentation.js';
import type { Arena } from '../../src/model/snapshot.js';
import { MiB, observation } from '../helpers/observation.js';

const arena = (index: number, fragmented: number): Arena => ({
  index, mapped_bytes: 0, in_use_bytes: 0, free_bytes: 0, dirty_bytes: 0, muzzy_bytes: 0, fragmented_bytes: fragmented, threads: 1, idle_ms: 0,
});

/** A redis-like jemalloc heap: 1.2 M keys, 80% deleted. */
const jemalloc = (active: number, allocated: number, anon: number) =>
  observation((d) => {
    d.allocator.name = 'jemalloc';
    d.allocator.background_thread = true;
    d.allocator.live_bytes = allocated;
    d.allocator.stats = { active_bytes: active, allocated_bytes: allocated };
    d.allocator.arenas = [arena(0, (active - allocated) * 0.9), arena(1, (active - allocated) * 0.1)];
    d.process.memory = { anon_bytes: anon, file_bytes: 5 * MiB, shmem_bytes: 0, swap_bytes: 0 };
  });

test("fragmentation inside slabs, by jemalloc's statistics, with the remedy that fits (not purging)", (t) => {
  const result = check(jemalloc(476 * MiB, 127 * MiB, 500 * MiB), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  const [f] = result.findings;
  t.is(f?.value, 349 * MiB);
  t.is(f?.subject.label, 'arena 0');
  t.is(f?.summary, '349.0 MiB free inside jemalloc pages that still hold live blocks (73% of its active pages)');
  t.regex(f!.message, /cannot return it/);
  t.regex(f!.remedy, /activedefrag/);
  t.false(/background_thread/.test(f!.remedy));
});

test('bounded by what the process measurably holds beyond live data', (t) => {
  const result = check(jemalloc(476 * MiB, 127 * MiB, 327 * MiB), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 200 * MiB);
});

test("quiet on jemalloc's normal few percent, and under other allocators", (t) => {
  t.is(check(jemalloc(110 * MiB, 100 * MiB, 130 * MiB), DEFAULT_THRESHOLDS).status, 'ok');
  t.is(check(observation(), DEFAULT_THRESHOLDS).status, 'ok');
});
