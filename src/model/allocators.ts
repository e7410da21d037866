// What each allocator does with a block that another thread frees, by
// version: the facts sleeping-owner rests on (measured ones in
// docs/accuracy.md).
import type { AllocatorName } from './snapshot.js';

/**
 * - `next-call`: mimalloc 2.0 (Debian's 2.0.9): the owner's next call into
 *   the allocator takes all its remote-freed blocks back; until then they
 *   stay in RSS. The agent's unreclaimed bytes model exactly this.
 * - `page-by-page`: mimalloc 2.1 and later 2.x: the owner takes blocks back
 *   page by page as it allocates from them; a sleeping owner keeps them all,
 *   and one call gives back only part, so only a measurement says how much
 *   (2.3.2, the Rust owner fixture built with the crate's v2 feature: 150 MB
 *   of anonymous RSS for 134 MB freed and 5 KB live, the same after a
 *   wake-up).
 * - `none`: nothing waits for an owner that a wake-up would give back:
 *   glibc, jemalloc and tcmalloc take a block back on any thread; under
 *   mimalloc 3 the threads that allocate next reuse the freed pages, and
 *   what stays when none does stayed after the owner woke too (3.3.2, the
 *   Rust owner fixture: 147 MB anonymous RSS for 5 KB live, before and after
 *   the wake-up and mi_collect(true)): retention, reported as such.
 */
export type RemoteFreeReclaim = 'next-call' | 'page-by-page' | 'none';

export function versionOf(text: string | null): [number, number, number] | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text ?? '');
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

export function remoteFreeReclaim(name: AllocatorName, version: string | null): RemoteFreeReclaim {
  if (name !== 'mimalloc') return 'none';
  const v = versionOf(version);
  // An unknown mimalloc is taken as Debian's (2.0.9), the one the preload meets most.
  if (!v) return 'next-call';
  if (v[0] >= 3) return 'none';
  if (v[0] === 2 && v[1] >= 1) return 'page-by-page';
  return 'next-call';
}
