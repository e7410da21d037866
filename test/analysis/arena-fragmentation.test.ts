import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check, MIN_RETAINED_BYTES } from '../../src/analysis/findings/arena-fragmentation.js';
import type { Arena } from '../../src/model/snapshot.js';
import { MiB, observation } from '../helpers/observation.js';

const arena = (index: number, mapped: number, free: number): Arena => ({
  index, mapped_bytes: mapped, in_use_bytes: mapped - free, free_bytes: free, dirty_bytes: null, threads: null, idle_ms: null,
});

test('fires when arenas are mostly free space, and names the worst arena', (t) => {
  const o = observation((d) => {
    d.allocator.live_bytes = 4 * MiB;
    d.process.rss_bytes = 200 * MiB;
    d.allocator.arenas = [arena(0, 2 * MiB, 1 * MiB), arena(1, 100 * MiB, 98 * MiB), arena(2, 90 * MiB, 80 * MiB)];
  });
  const result = check(o, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.subject.label, 'arena 1');
  t.is(result.findings[0]?.value, 179 * MiB);
  t.regex(result.findings[0]!.remedy, /leakscope reclaim 100.*MALLOC_ARENA_MAX=2/);
});

test('after malloc_trim, RSS bounds what is retained although the counters did not move', (t) => {
  const o = observation((d) => {
    d.allocator.live_bytes = 4 * MiB;
    d.process.rss_bytes = 20 * MiB;
    d.allocator.arenas = [arena(1, 100 * MiB, 98 * MiB)];
  });
  t.is(check(o, DEFAULT_THRESHOLDS).status, 'ok');
});

test('quiet on a compact heap and on other allocators', (t) => {
  const compact = observation((d) => {
    d.allocator.arenas = [arena(0, 200 * MiB, 10 * MiB)];
  });
  t.is(check(compact, DEFAULT_THRESHOLDS).status, 'ok');
  const small = observation((d) => {
    d.allocator.live_bytes = 0;
    d.allocator.arenas = [arena(0, MIN_RETAINED_BYTES, MIN_RETAINED_BYTES - 1)];
  });
  t.is(check(small, DEFAULT_THRESHOLDS).status, 'ok');
  const jemalloc = observation((d) => {
    d.allocator.name = 'jemalloc';
    d.allocator.live_bytes = 0;
    d.allocator.arenas = [arena(1, 100 * MiB, 98 * MiB)];
  });
  t.is(check(jemalloc, DEFAULT_THRESHOLDS).status, 'ok');
});
