// Allocation stacks: from the agent's raw stacks (return addresses and
// counts, native/src/core/stacks.cc) and their names, the snapshot's
// `heap.stacks`; and which stacks a growth came from.
import type { JsHeapProfileFacts } from './node-facts.js';
import type { AllocationStack, HeapModule, HeapStacks, StackFrame } from './snapshot.js';

/** The agent's `stacks` part of a snapshot. */
export interface AgentStackFacts {
  readonly unwinder: string;
  /** Mean bytes between stacks (a stack is taken for some of the ownership samples). */
  readonly interval_bytes?: number;
  readonly max_depth: number;
  readonly capacity: number;
  readonly used: number;
  readonly dropped: number;
  readonly checkpoint_ms: readonly number[];
  readonly entries: readonly {
    readonly id: number;
    readonly alloc_blocks: number;
    readonly alloc_bytes: number;
    readonly live_blocks: number;
    readonly live_bytes: number;
    readonly live_at: readonly number[];
    readonly frames: readonly string[];
  }[];
  readonly modules: readonly ModuleFacts[];
}

/** A loaded object as the agent reports it (native/src/core/stacks.cc). */
export interface ModuleFacts {
  readonly path: string;
  readonly load_bias: string;
  readonly build_id: string;
  readonly segments: readonly { readonly start: string; readonly end: string; readonly file_offset: number }[];
}

/**
 * The allocator's own entry frames, which begin every native stack: the
 * malloc family, C++ operator new, Rust's allocation shims and leakscope's
 * hooks. A stack is shown from the first frame after them.
 */
const ALLOCATOR_ENTRY =
  /^(?:malloc|calloc|realloc|reallocarray|free|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|__libc_(?:malloc|calloc|realloc|memalign)|operator new(?:\[\])?\b.*|(?:__rustc::)?__rust_(?:alloc|alloc_zeroed|realloc)|(?:__rustc::)?__rdl_\w+|(?:__rustc::)?__rg_\w+|_?leakscope\w*|.*\bleakscope::.*|alloc::alloc::\w+|<[^>]*as core::alloc::global::GlobalAlloc>::\w+.*|core::alloc::global::GlobalAlloc::\w+.*)$/;

/** Library code that allocates on a caller's behalf: a stack's site is named past it (the frames stay). */
const LIBRARY_FRAME =
  /^(?:[\w:]+[&*]*\s)?(?:std::|__gnu_cxx::|__cxxabiv1::|<std::|alloc::|<alloc::|core::|<core::|hashbrown::|<hashbrown::|__libc_|_IO_|__GI_|__strdup|strdup|strndup|g_malloc|g_slice)/;

function isAgentModule(path: string | null): boolean {
  return path !== null && /\/libleakscope[^/]*\.so$|\/leakscope\.node$/.test(path);
}

/** How deep into a stack the allocator's entry frames may reach (the agent's own, where it is linked into the program, come first). */
const ENTRY_DEPTH = 24;

/**
 * Drops the allocator's entry frames from the top of a stack (never all of
 * it): everything down to the last entry frame near the top. Where the agent
 * is linked into the program (the Rust crate), its own frames are not
 * skipped by the agent and lead the stack too; they end at the crate's entry.
 */
export function withoutAllocatorFrames(frames: readonly StackFrame[]): StackFrame[] {
  const entry = (f: StackFrame) => isAgentModule(f.module) || (f.function !== null && ALLOCATOR_ENTRY.test(f.function));
  let last = -1;
  for (let i = 0; i < Math.min(frames.length - 1, ENTRY_DEPTH); i++) if (entry(frames[i]!)) last = i;
  return frames.slice(last + 1);
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** "fn (file:line)", or the address in its object when there is no name. */
export function frameLabel(f: StackFrame): string {
  if (f.function === null) return f.module ? `${f.address || '?'} in ${basename(f.module)}` : f.address || '?';
  const name = f.function.length > 80 ? `${f.function.slice(0, 77)}...` : f.function;
  // A file without a line is a compilation unit's name, not a place.
  return f.file && f.line ? `${name} (${basename(f.file)}:${f.line})` : name;
}

function isLibraryFrame(f: StackFrame): boolean {
  if (f.function !== null && LIBRARY_FRAME.test(f.function)) return true;
  // Headers of the C and C++ libraries, Rust's standard library and crates' sources.
  if (f.file !== null && /^node:|\/node_modules\/|^\/usr\/include\/|\/rustc\/[0-9a-f]+\/library\/|\/\.cargo\/registry\//.test(f.file)) return true;
  // A system library's frames (libc, libstdc++), unless nothing else has a name.
  return f.module !== null && /^\/(?:usr\/)?lib(?:64|32)?\//.test(f.module) && !/\/node_modules\//.test(f.module);
}

/** Where a stack's own code is: the first named frame past library plumbing (the first frame when none is). */
export function siteFrameIndex(frames: readonly StackFrame[]): number {
  return Math.max(0, frames.findIndex((f) => f.function !== null && !isLibraryFrame(f)));
}

/** The code that allocated, for a person: the first frame past library plumbing, and its caller. */
export function siteOf(frames: readonly StackFrame[]): string {
  if (frames.length === 0) return '(no stack)';
  const at = siteFrameIndex(frames);
  const own = frameLabel(frames[at]!);
  const callers = frames.slice(at + 1).filter((f) => f.function !== null);
  // Its caller in the program; a library's (a thread's start, an invoke) says nothing.
  const caller = isLibraryFrame(frames[at]!) ? callers[0] : callers.find((f) => !isLibraryFrame(f));
  return caller ? `${own} ← ${frameLabel(caller)}` : own;
}

/** A native stack's frames, named: each address may stand for several (inlined) frames. */
export function namedFrames(addresses: readonly string[], names: ReadonlyMap<string, readonly StackFrame[]>): StackFrame[] {
  return addresses.flatMap((a) => names.get(a) ?? [{ address: a, function: null, file: null, line: null, module: null }]);
}

export function nativeStacks(
  facts: AgentStackFacts,
  names: ReadonlyMap<string, readonly StackFrame[]>,
  modules: readonly HeapModule[],
  notes: readonly string[],
  sampleBytes: number,
  nowMs: number,
): HeapStacks {
  const stacks: AllocationStack[] = facts.entries.map((e) => {
    const frames = withoutAllocatorFrames(namedFrames(e.frames, names));
    return {
      id: `n${e.id}`,
      site: siteOf(frames),
      frames,
      live_bytes: e.live_bytes,
      live_blocks: Math.round(e.live_blocks),
      allocated_bytes: e.alloc_bytes,
      allocated_blocks: Math.round(e.alloc_blocks),
      live_history: [
        ...facts.checkpoint_ms.map((t, k) => ({ t_ms: t, live_bytes: e.live_at[k] ?? 0 })),
        { t_ms: nowMs, live_bytes: e.live_bytes },
      ],
    };
  });
  stacks.sort((a, b) => b.live_bytes - a.live_bytes);
  const allNotes = [...notes];
  if (facts.dropped > 0)
    allNotes.push(`${facts.dropped} samples found no room in the agent's stack table (${facts.capacity} stacks): they count under no stack`);
  return {
    source: 'native',
    unwinder: facts.unwinder,
    sample_bytes: facts.interval_bytes ?? sampleBytes,
    stacks_total: facts.used,
    dropped: facts.dropped,
    stacks,
    modules,
    notes: allNotes,
  };
}

/** V8's sampling heap profile as allocation stacks: JavaScript functions with file:line, live bytes only. */
export function jsStacks(facts: JsHeapProfileFacts, nowMs: number): HeapStacks {
  const stacks: AllocationStack[] = facts.stacks.map((s) => {
    const frames: StackFrame[] = s.frames.map((f) => ({
      address: '',
      function: f.function || '(anonymous)',
      file: f.url || null,
      line: f.url && f.line > 0 ? f.line : null,
      column: f.column,
      module: f.url || null,
    }));
    return {
      id: `js${s.id}`,
      site: siteOf(frames),
      frames,
      live_bytes: s.live_bytes,
      live_blocks: s.live_blocks,
      allocated_bytes: null,
      allocated_blocks: null,
      live_history: [...facts.checkpoint_ms.map((t, k) => ({ t_ms: t, live_bytes: s.live_at[k] ?? 0 })), { t_ms: nowMs, live_bytes: s.live_bytes }],
    };
  });
  stacks.sort((a, b) => b.live_bytes - a.live_bytes);
  return {
    source: 'v8-sampling',
    unwinder: 'v8',
    sample_bytes: facts.sample_bytes,
    stacks_total: stacks.length,
    dropped: 0,
    stacks,
    modules: [],
    notes: [
      "JavaScript stacks from V8's sampling heap profiler: live objects only (no allocated totals), sampled every ~64 KiB",
      ...(facts.error ? [`the sampling heap profiler reported: ${facts.error}`] : []),
    ],
  };
}

/** Live bytes a stack had at `t_ms`, from its history (the newest point at or before it; its first point when none). */
function liveAt(stack: AllocationStack, tMs: number): number {
  let value = stack.live_history[0]?.live_bytes ?? 0;
  for (const p of stack.live_history) if (p.t_ms <= tMs) value = p.live_bytes;
  return value;
}

/**
 * A growth finding's stacks: those whose live bytes rose since the window
 * began (at `nowMs - windowMs`), most first, and the ids a finding names:
 * the first, and up to two more holding 5% of it or more.
 */
export function growthStacks(heap: HeapStacks | undefined, nowMs: number, windowMs: number): { growth: StackGrowth[]; named: string[] } {
  const growth = heap ? growthByStack(heap, nowMs - windowMs) : [];
  const named = growth.filter((s, k) => k === 0 || s.share >= 0.05).slice(0, 3).map((s) => s.stack.id);
  return { growth, named };
}

/** Live bytes a stack added since the oldest point of its history (up to 16 minutes ago). */
export function grownSinceOldest(stack: AllocationStack): number {
  return stack.live_bytes - (stack.live_history[0]?.live_bytes ?? stack.live_bytes);
}

export interface StackGrowth {
  readonly stack: AllocationStack;
  /** Live bytes added since the window began. */
  readonly added: number;
  /** Its share of the growth of all stacks that grew (0..1). */
  readonly share: number;
}

/**
 * The stacks whose live bytes rose since `sinceMs`, most first: each with
 * what it added and its share of what all growing stacks added. The
 * agent's checkpoints are 30 s apart, so the window starts at the newest
 * checkpoint at or before `sinceMs`.
 */
export function growthByStack(heap: HeapStacks, sinceMs: number): StackGrowth[] {
  const grown = heap.stacks
    .map((stack) => ({ stack, added: stack.live_bytes - liveAt(stack, sinceMs) }))
    .filter((g) => g.added > 0)
    .sort((a, b) => b.added - a.added);
  const total = grown.reduce((sum, g) => sum + g.added, 0);
  return grown.map((g) => ({ ...g, share: total > 0 ? g.added / total : 0 }));
}

/** What a stack is across snapshots (and processes): its named frames, or addresses where it has no names. */
export function stackKey(stack: AllocationStack): string {
  return stack.frames.map((f) => (f.function ? `${f.function}@${f.file ?? ''}:${f.line ?? ''}` : f.address)).join('|');
}
