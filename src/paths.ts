// Where leakscope's own built files and the allocators it can preload are.
import { existsSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LeakscopeError } from './errors.js';
import type { CountMode } from './model/snapshot.js';

export type { CountMode };

/** The repository (or installed package) root: dist/src/paths.js is two levels down. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');


const AGENT_LIBRARY: Readonly<Record<CountMode, string>> = { sampled: 'libleakscope.so', exact: 'libleakscope-exact.so' };

/** The counts the agent keeps unless told otherwise: sampled, whose cost is close to interposing alone (docs/benchmarks.md). */
export const DEFAULT_COUNT_MODE: CountMode = 'sampled';

/** The LD_PRELOAD agent; LEAKSCOPE_AGENT_LIB names the default one, and the exact one is looked for beside it. */
export function agentLibraryPath(counts: CountMode = DEFAULT_COUNT_MODE): string {
  const override = process.env.LEAKSCOPE_AGENT_LIB;
  const fromOverride = override && (counts === DEFAULT_COUNT_MODE ? override : resolve(dirname(override), AGENT_LIBRARY[counts]));
  const candidates = [fromOverride, resolve(PACKAGE_ROOT, 'build/lib', AGENT_LIBRARY[counts])].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new LeakscopeError(`the leakscope agent is not built (tried ${candidates.join(', ')}); run 'npm install'`);
  return found;
}

/** A file of the Node bridge (src/node-agent, built to CommonJS), which the target process loads. */
export function nodeAgentFile(name: 'bridge.cjs' | 'preload.cjs'): string {
  return resolve(PACKAGE_ROOT, 'dist/src/node-agent', name);
}

/** Whether an executable's path names node (node, nodejs, node20, …). */
export function isNodeExecutable(path: string): boolean {
  return /^node(js)?(\d+)?$/.test(basename(path.replace(/ \(deleted\)$/, '')));
}

export type PreloadAllocator = 'glibc' | 'jemalloc' | 'mimalloc';

const ALLOCATOR_LIBRARIES: Readonly<Record<Exclude<PreloadAllocator, 'glibc'>, readonly string[]>> = {
  jemalloc: ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib64/libjemalloc.so.2', '/usr/lib/libjemalloc.so.2'],
  mimalloc: ['/usr/lib/x86_64-linux-gnu/libmimalloc.so.2', '/usr/lib64/libmimalloc.so.2', '/usr/lib/libmimalloc.so.2'],
};

const APT_PACKAGE = { jemalloc: 'libjemalloc2', mimalloc: 'libmimalloc2.0' } as const;

/** The shared library that provides `allocator`, or null for glibc (already there). */
export function allocatorLibraryPath(allocator: PreloadAllocator): string | null {
  if (allocator === 'glibc') return null;
  const candidates = ALLOCATOR_LIBRARIES[allocator];
  const found = candidates.find((p) => existsSync(p));
  if (!found)
    throw new LeakscopeError(
      `${allocator} is not installed (tried ${candidates.join(', ')}); install it, e.g. 'apt-get install ${APT_PACKAGE[allocator]}'`,
    );
  return found;
}

/** A fixture program built with the agent (the demo runs one). */
export function fixturePath(name: string): string {
  const path = resolve(PACKAGE_ROOT, 'build/fixtures', name);
  if (!existsSync(path)) throw new LeakscopeError(`the ${name} fixture is not built (no ${path}); run 'npm install'`);
  return path;
}

/** The injector (native/src/injector) and the agent library it loads into a running native process. */
export function injectorFiles(): { readonly injector: string; readonly library: string } {
  const injector = resolve(PACKAGE_ROOT, 'build/lib/leakscope-inject');
  const library = resolve(PACKAGE_ROOT, 'build/lib/libleakscope-inject.so');
  for (const path of [injector, library])
    if (!existsSync(path)) throw new LeakscopeError(`the leakscope injector is not built (no ${path}); run 'npm install'`);
  return { injector, library };
}
