import test from 'ava';
import { check } from '../../src/analysis/findings/idle-dirty-pages.js';
import type { Arena } from '../../src/model/snapshot.js';
import { MiB, observation } from '../helpers/observation.js';

const arena = (index: number, dirty: number, idleMs: number | null): Arena => ({
  index, mapped_bytes: dirty + MiB, in_use_bytes: MiB, free_bytes: dirty, dirty_bytes: dirty, threads: 1, idle_ms: idleMs,
});
const THRESHOLDS = { idleMs: 10_000 };

test('one finding per idle arena with dirty pages', (t) => {
  const o = observation((d) => {
    d.allocator.name = 'jemalloc';
    d.allocator.background_thread = false;
    d.allocator.arenas = [arena(0, 90 * MiB, 0), arena(3, 96 * MiB, 60_000), arena(4, 40 * MiB, 20_000)];
    d.allocator.live_bytes = 10 * MiB;
    d.process.memory = { anon_bytes: 250 * MiB, file_bytes: 0, shmem_bytes: 0, swap_bytes: 0 };
  });
  const result = check(o, THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.deepEqual(result.findings.map((f) => [f.subject.id, f.value]), [['3', 96 * MiB], ['4', 40 * MiB]]);
  t.is(result.findings[0]?.summary, '96.0 MiB of dirty pages sit in jemalloc arena 3, untouched for 60 s');
  t.regex(result.findings[0]!.remedy, /background_thread:true/);
});

test('quiet with background threads on, or on busy arenas, or under glibc', (t) => {
  const background = observation((d) => {
    d.allocator.name = 'jemalloc';
    d.allocator.background_thread = true;
    d.allocator.arenas = [arena(3, 96 * MiB, 60_000)];
  });
  t.is(check(background, THRESHOLDS).status, 'ok');
  const busy = observation((d) => {
    d.allocator.name = 'jemalloc';
    d.allocator.background_thread = false;
    d.allocator.arenas = [arena(3, 96 * MiB, 500)];
  });
  t.is(check(busy, THRESHOLDS).status, 'ok');
  const glibc = observation((d) => {
    d.allocator.arenas = [arena(3, 96 * MiB, 60_000)];
  });
  t.is(check(glibc, THRESHOLDS).status, 'ok');
});

test('no more than the process measurably holds beyond live data', (t) => {
  const o = observation((d) => {
    d.allocator.name = 'jemalloc';
    d.allocator.background_thread = false;
    d.allocator.arenas = [arena(3, 96 * MiB, 60_000), arena(4, 40 * MiB, 20_000)];
    d.allocator.live_bytes = 10 * MiB;
    // 110 MiB beyond live: the larger arena's 96 MiB, then 14 MiB for the other, below the minimum.
    d.process.memory = { anon_bytes: 120 * MiB, file_bytes: 0, shmem_bytes: 0, swap_bytes: 0 };
  });
  const result = check(o, THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.deepEqual(result.findings.map((f) => [f.subject.id, f.value]), [['3', 96 * MiB]]);
});
