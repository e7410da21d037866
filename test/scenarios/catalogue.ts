// The accuracy suite's scenarios: real programs under real allocators, each
// printing its own truth — what it is (a leak, retention, steady) and how
// much. leakscope is graded on them as a user would see it 75 s after start
// (docs/accuracy.md). The programs are the suite's own (test/scenarios/*.c),
// the fixtures the tests already use, the Rust crate's fixtures, Tokio
// services and a Node service.
import { resolve } from 'node:path';
import type { Cause, Snapshot } from '../../src/model/snapshot.js';
import { PACKAGE_ROOT } from '../../src/paths.js';

export const SCENARIO_BIN = resolve(PACKAGE_ROOT, 'build/scenarios');
export const FIXTURE_BIN = resolve(PACKAGE_ROOT, 'build/fixtures');
export const RUST_BIN = resolve(PACKAGE_ROOT, 'build/cargo/release');
export const RUST_MIMALLOC_V2_BIN = resolve(PACKAGE_ROOT, 'build/cargo-mimalloc-v2/release');
export const NODE_DIR = resolve(PACKAGE_ROOT, 'fixtures/node');

const MiB = 1024 * 1024;

/** What a program printed on its ready line. */
export type Truth = { readonly pid: number; readonly port?: number } & Readonly<Record<string, unknown>>;

export interface Launch {
  /** The program and its arguments. */
  readonly argv: readonly string[];
  /** Under `leakscope run --allocator …`; absent for a program that carries its agent (the crate) or a Node process attached by pid. */
  readonly allocator?: 'glibc' | 'jemalloc' | 'mimalloc';
  /** Attach by pid right after start (Node: the bridge records from attach). */
  readonly attachAtStart?: boolean;
}

/** The amount a finding should state, and what leakscope stated. */
export interface Amount {
  readonly what: string;
  readonly expected: number;
  readonly measured: number | null;
  /** Allowed relative error. */
  readonly tolerance: number;
  readonly unit: 'bytes' | 'bytes_per_s' | 'count';
}

export interface Scenario {
  readonly id: string;
  /** The shape in words, for the table. */
  readonly shape: string;
  /** The allocator and version it runs on, as the table names it. */
  readonly allocator: string;
  readonly launch: Launch;
  /** The load a service gets while it is watched: requests a second to a path of its port. */
  readonly load?: { readonly path: string; readonly perSecond: number };
  /** The truth the program's own line does not carry (for fixtures shared with the tests). */
  readonly cause?: Cause;
  readonly finding?: string;
  /** The amount to grade, from the truth and the snapshot; null when there is none. */
  amount?(truth: Truth, snapshot: Snapshot): Amount | null;
  /** In `npm test` (CI's time), not only in `npm run accuracy`. */
  readonly ci?: boolean;
}

const valueOf = (s: Snapshot, id: string): number | null => s.findings.find((f) => f.id === id)?.value ?? null;
const num = (truth: Truth, key: string): number => Number(truth[key]);

const rate = (id: string, key = 'leak_bytes_per_s') => (truth: Truth, s: Snapshot): Amount => ({
  what: `${id} rate`,
  expected: num(truth, key),
  measured: valueOf(s, id),
  tolerance: 0.25,
  unit: 'bytes_per_s',
});

const bytes = (id: string, expected: (t: Truth) => number, what: string) => (truth: Truth, s: Snapshot): Amount => ({
  what,
  expected: expected(truth),
  measured: valueOf(s, id),
  tolerance: 0.25,
  unit: 'bytes',
});

/** Allocator retention found as `finding`, of the bytes the program printed as `truthKey`. */
const retainedAs = (finding: string, truthKey: string, what: string) => ({
  cause: 'allocator-retention' as const,
  finding,
  amount: bytes(finding, (t) => num(t, truthKey), what),
});

export const SCENARIOS: readonly Scenario[] = [
  {
    id: 'c-ramp-then-plateau',
    shape: '200 MiB loaded in 2 s, then light churn',
    allocator: 'glibc 2.36',
    launch: { argv: [`${SCENARIO_BIN}/shapes`, 'ramp'], allocator: 'glibc' },
    ci: true,
  },
  {
    id: 'c-late-leak',
    shape: 'flat 40 s, then 2 MiB/s kept',
    allocator: 'glibc 2.36',
    launch: { argv: [`${SCENARIO_BIN}/shapes`, 'late-leak'], allocator: 'glibc' },
    amount: rate('heap-growth'),
    ci: true,
  },
  {
    id: 'c-sawtooth-cache',
    shape: 'a 40 MiB cache filled and emptied every 2 s',
    allocator: 'glibc 2.36',
    launch: { argv: [`${SCENARIO_BIN}/shapes`, 'sawtooth'], allocator: 'glibc' },
  },
  {
    id: 'c-slow-leak-under-sawtooth',
    shape: '1 MiB/s kept beside the 40 MiB sawtooth cache',
    allocator: 'glibc 2.36',
    launch: { argv: [`${SCENARIO_BIN}/shapes`, 'sawtooth-leak'], allocator: 'glibc' },
    amount: rate('heap-growth'),
  },
  {
    id: 'c-leak-from-start',
    shape: '2.5 MiB/s kept from the start, with churn',
    allocator: 'glibc 2.36',
    launch: { argv: [`${FIXTURE_BIN}/growing_leak`], allocator: 'glibc' },
    cause: 'live-data-growing',
    finding: 'heap-growth',
    amount: rate('heap-growth'),
  },
  {
    id: 'c-thread-pool',
    shape: '16 worker threads started at once, then steady work',
    allocator: 'glibc 2.36',
    launch: { argv: [`${SCENARIO_BIN}/shapes`, 'pool'], allocator: 'glibc' },
    ci: true,
  },
  {
    id: 'c-thread-leak',
    shape: 'a thread every 2 s that never ends',
    allocator: 'glibc 2.36',
    launch: { argv: [`${SCENARIO_BIN}/shapes`, 'thread-leak'], allocator: 'glibc' },
  },
  {
    id: 'c-arena-fragmentation',
    shape: '4 threads × 48 MiB burst, every 64th block kept',
    allocator: 'glibc 2.36',
    launch: { argv: [`${FIXTURE_BIN}/arena_burst`], allocator: 'glibc' },
    cause: 'allocator-retention',
    finding: 'arena-fragmentation',
    amount: bytes('arena-fragmentation', (t) => num(t, 'burst_bytes') - num(t, 'survivor_bytes'), 'bytes freed by the burst, held by the arenas'),
  },
  {
    id: 'c-mimalloc-sleeping-owner',
    shape: 'a loader builds 128 MiB, workers free it, the loader sleeps',
    allocator: 'Debian mimalloc 2.0.9',
    launch: { argv: [`${FIXTURE_BIN}/sleeping_owner`, '128'], allocator: 'mimalloc' },
    ...retainedAs('sleeping-owner', 'remote_freed_bytes', 'bytes freed by other threads that stay'),
    ci: true,
  },
  {
    id: 'c-jemalloc-idle-dirty',
    shape: 'a worker frees a burst in its own arena, then sleeps (background threads off)',
    allocator: 'Debian jemalloc 5.3.0',
    launch: { argv: [`${FIXTURE_BIN}/idle_arena`], allocator: 'jemalloc' },
    ...retainedAs('idle-dirty-pages', 'burst_bytes', 'dirty bytes left by the burst'),
  },
  {
    id: 'c-jemalloc-slab-fragmentation',
    shape: '1.2 M small blocks, 80% freed across every slab',
    allocator: 'Debian jemalloc 5.3.0',
    launch: { argv: [`${SCENARIO_BIN}/slab_frag`], allocator: 'jemalloc' },
    amount: bytes('slab-fragmentation', (t) => num(t, 'fragmented_bytes'), 'stats.active − stats.allocated, as the program read it'),
    ci: true,
  },
  {
    id: 'c-tasks-never-polled',
    shape: 'a heartbeat task parked at spawn for each connection, never polled',
    allocator: 'glibc 2.36',
    launch: { argv: [`${SCENARIO_BIN}/parked`], allocator: 'glibc' },
    // Stuck once older than the 30 s threshold: the heartbeats of the first 45 s of 75.
    amount: (truth, s) => ({
      what: 'heartbeats never polled for over 30 s',
      expected: num(truth, 'heartbeats_per_s') * (s.process.started_at ? (Date.parse(s.taken_at) - Date.parse(s.process.started_at)) / 1000 - 30 : 45),
      measured: valueOf(s, 'idle-forever'),
      tolerance: 0.25,
      unit: 'count',
    }),
    ci: true,
  },
  {
    id: 'c-tasks-healthy',
    shape: 'the same runtime, every task polled and completed',
    allocator: 'glibc 2.36',
    launch: { argv: [`${SCENARIO_BIN}/parked`, '--healthy'], allocator: 'glibc' },
  },
  {
    id: 'rust-mimalloc3-owner',
    shape: 'loader/refresh in Rust: a loader builds 128 MiB, workers drop it',
    allocator: 'mimalloc 3.3.2 (the mimalloc crate 0.1.52, default)',
    launch: { argv: [`${RUST_BIN}/owner_mimalloc`, '128'] },
    ...retainedAs('retention', 'remote_freed_bytes', 'bytes the workers freed, which stay'),
  },
  {
    id: 'rust-mimalloc2-owner',
    shape: 'the same on the crate built as mimalloc 2 (its v2 feature)',
    allocator: 'mimalloc 2.3.2 (the mimalloc crate 0.1.52, v2)',
    launch: { argv: [`${RUST_MIMALLOC_V2_BIN}/owner_mimalloc_v2`, '128'] },
    ...retainedAs('sleeping-owner', 'remote_freed_bytes', 'bytes the workers freed, which wait for the loader'),
  },
  {
    id: 'rust-jemalloc-owner',
    shape: 'the same on tikv-jemallocator, background threads off',
    allocator: 'jemalloc 5.3 (tikv-jemallocator)',
    launch: { argv: [`${RUST_BIN}/owner_jemalloc`, '128'] },
    ...retainedAs('idle-dirty-pages', 'owner_arena_dirty_bytes', "the loader arena's dirty bytes, as jemalloc stated them"),
  },
  {
    id: 'tokio-leaky',
    shape: 'a Tokio service: every discarded default leaves a task (50 req/s)',
    allocator: 'glibc 2.36 (System)',
    launch: { argv: [`${RUST_BIN}/http_leaky`] },
    load: { path: '/quote', perSecond: 50 },
    cause: 'tasks-leaking',
    finding: 'task-growth',
  },
  {
    id: 'tokio-healthy',
    shape: 'its healthy twin under the same load',
    allocator: 'glibc 2.36 (System)',
    launch: { argv: [`${RUST_BIN}/http_healthy`] },
    load: { path: '/quote', perSecond: 50 },
    cause: 'steady',
    ci: true,
  },
  {
    id: 'node-global-array',
    shape: 'Node: every request kept in a module-level array (100 req/s)',
    allocator: 'glibc 2.36, V8 (Node 20)',
    launch: { argv: [process.execPath, `${NODE_DIR}/global_array.mjs`], attachAtStart: true },
    load: { path: '/', perSecond: 100 },
    cause: 'live-data-growing',
    finding: 'v8-heap-growth',
    amount: (_truth, s) => ({
      what: 'JavaScript heap kept a second (8 KiB a request)',
      expected: 100 * 8 * 1024,
      measured: valueOf(s, 'v8-heap-growth'),
      tolerance: 0.25,
      unit: 'bytes_per_s',
    }),
  },
  {
    id: 'node-bounded-history',
    shape: 'Node: the same service keeping only the last 500 requests',
    allocator: 'glibc 2.36, V8 (Node 20)',
    launch: { argv: [process.execPath, `${NODE_DIR}/global_array.mjs`, '--bounded'], attachAtStart: true },
    load: { path: '/', perSecond: 100 },
    cause: 'steady',
  },
];

export { MiB };
