// The agent's own threads allocate from the agent's heap (native/src/core/
// agent_heap.h), not the program's allocator: a one-threaded program under
// the agent shows one glibc arena, not one more per agent thread; redis's
// jemalloc is compared with a twin in redis.test.ts.
import test from 'ava';
import { snapshotOf, startFixture } from './helpers/process.js';

interface SitesTruth {
  pid: number;
}

for (const counts of ['sampled', 'exact'] as const) {
  test(`a one-threaded program under leakscope run (counts ${counts}): one glibc arena, the program's, however much the agent works`, async (t) => {
    const fixture = await startFixture<SitesTruth>(t, 'alloc_sites', [], { counts });
    let arenas: number[] = [];
    // Each snapshot is the agent's server building a few hundred KiB of JSON; the sampler reads malloc_info every second.
    for (let i = 0; i < 4; i++) {
      const s = await snapshotOf(fixture.pid);
      t.is(s.allocator.name, 'glibc');
      arenas = s.allocator.arenas.map((a) => a.index);
      await new Promise((r) => setTimeout(r, 500));
    }
    t.deepEqual(arenas, [0]);
  });
}
