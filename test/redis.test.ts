// A real program as a peer: Debian's redis-server (linked to the system's
// libjemalloc2, background threads on) under `leakscope run`, and started
// plainly then attached by pid (docs/attach.md), filled with a
// million keys of which 80% are then deleted — fragmentation inside
// jemalloc's slabs. leakscope's amounts are held against what redis itself
// states in INFO memory, and its reclaim against redis's own MEMORY PURGE on
// a twin instance.
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import type { Snapshot } from '../src/model/snapshot.js';
import { CLI, MiB, runCli, safeKill, snapshotOf } from './helpers/process.js';

const run = promisify(execFile);
const KEYS = 1_000_000;

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args], { maxBuffer: 16 * MiB });
  return stdout;
}

/** INFO memory's numeric fields. */
async function memoryInfo(port: number): Promise<Record<string, number>> {
  const info: Record<string, number> = {};
  for (const line of (await cli(port, 'INFO', 'memory')).split(/\r?\n/)) {
    const [key, value] = line.split(':');
    if (key && value && /^-?\d+(\.\d+)?$/.test(value)) info[key] = Number(value);
  }
  return info;
}

/** A redis-server, under leakscope run or started plainly, filled with KEYS keys, 80% of them deleted. */
async function fragmentedRedis(t: ExecutionContext, port: number, how: 'run' | 'plain' = 'run'): Promise<{ pid: number }> {
  const { pid } = await startRedis(t, port, how);
  await cli(port, 'DEBUG', 'POPULATE', String(KEYS), 'key', '64');
  await cli(port, 'EVAL', `for i=0,${KEYS - 1} do if i % 5 ~= 0 then redis.call('DEL', 'key:' .. i) end end`, '0');
  t.is(Number((await cli(port, 'DBSIZE')).trim()), KEYS / 5);
  return { pid };
}

/** A redis-server under leakscope run or started plainly, answering PING. */
async function startRedis(t: ExecutionContext, port: number, how: 'run' | 'plain'): Promise<{ pid: number }> {
  const server = ['redis-server', '--port', String(port), '--save', '', '--appendonly', 'no', '--enable-debug-command', 'yes', '--loglevel', 'warning'];
  const child =
    how === 'run'
      ? // A sample every 8 KiB: the live-bytes estimate of ~40 MB is then within a few percent (every 64 KiB it is ±4% at one sigma).
        spawn(process.execPath, [CLI, 'run', '--sample-interval', '8192', '--', ...server], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(server[0]!, server.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  // redis prints no truth of its own: leakscope run names the pid it loaded the agent into.
  const pid =
    how === 'plain'
      ? child.pid!
      : await new Promise<number>((resolve, reject) => {
          let stderr = '';
          child.stderr!.on('data', (chunk) => {
            stderr += String(chunk);
            const m = /agent loaded into pid (\d+)/.exec(stderr);
            if (m) resolve(Number(m[1]));
          });
          child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${stderr}`)));
        });
  t.teardown(() => safeKill(pid, 'SIGKILL'));
  for (let i = 0; i < 100; i++) {
    try {
      if ((await cli(port, 'PING')).trim() === 'PONG') break;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid };
}

/** The kernel's names of a process's threads, sorted. */
function threadNames(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`)
    .map((tid) => readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim())
    .sort();
}

/** What redis's jemalloc says of its arenas in use and its background threads (MEMORY MALLOC-STATS). */
async function jemallocState(port: number): Promise<{ arenas: string[]; background_threads: number }> {
  const text = await cli(port, 'MEMORY', 'MALLOC-STATS');
  return { arenas: text.match(/^arenas\[\d+\]:$/gm) ?? [], background_threads: Number(/Background threads: (\d+)/.exec(text)?.[1]) };
}

const within = (measured: number, truth: number, share: number) => Math.abs(measured - truth) <= share * truth;

/**
 * The verdict and the two amounts held against what redis states in INFO
 * memory: slab fragmentation within `fragShare` of allocator_frag_bytes,
 * retention within 25% of allocator_resident − allocator_allocated.
 */
function againstRedis(t: ExecutionContext, snapshot: Snapshot, info: Record<string, number>, fragShare: number) {
  const ids = snapshot.findings.map((f) => f.id);
  t.is(snapshot.verdict.cause, 'allocator-retention', `findings: ${ids.join(', ')}`);
  const fragmentation = snapshot.findings.find((f) => f.id === 'slab-fragmentation');
  const retention = snapshot.findings.find((f) => f.id === 'retention');
  if (!fragmentation || !retention) throw new Error(`slab-fragmentation and retention expected; findings: ${ids.join(', ')}`);
  const fragBytes = info.allocator_frag_bytes as number;
  const held = (info.allocator_resident as number) - (info.allocator_allocated as number);
  t.true(within(fragmentation.value, fragBytes, fragShare), `slab-fragmentation ${fragmentation.value}, redis allocator_frag_bytes ${fragBytes}`);
  t.true(within(retention.value, held, 0.25), `retention ${retention.value}, redis allocator_resident − allocator_allocated ${held}`);
  t.log(`${snapshot.agent.mode}: slab-fragmentation ${fragmentation.value} vs allocator_frag_bytes ${fragBytes}; retention ${retention.value} vs resident − allocated ${held}`);
  return { ids, fragmentation };
}

/** A snapshot once retention is judged: it waits for live bytes to be flat over a few samples. */
async function settledSnapshot(pid: number): Promise<Snapshot> {
  let snapshot = await snapshotOf(pid);
  for (let i = 0; i < 20 && !snapshot.findings.some((f) => f.id === 'retention'); i++) {
    await new Promise((r) => setTimeout(r, 500));
    snapshot = await snapshotOf(pid);
  }
  return snapshot;
}

test('redis-server, 1 M keys with 80% deleted: slab fragmentation and retention within 25% of what redis states; reclaim gives back what MEMORY PURGE does on a twin', async (t) => {
  t.timeout(180_000);
  const [one, twin] = await Promise.all([fragmentedRedis(t, 16379), fragmentedRedis(t, 16380)]);
  const snapshot = await settledSnapshot(one.pid);
  const info = await memoryInfo(16379);
  t.is(snapshot.allocator.name, 'jemalloc');
  t.is(snapshot.allocator.background_thread, true, 'redis turns jemalloc background threads on');
  const { ids, fragmentation } = againstRedis(t, snapshot, info, 0.25);
  t.false(ids.includes('idle-dirty-pages'), 'no dirty-pages finding: background threads purge them');
  t.regex(fragmentation.remedy, /activedefrag/);
  // Live bytes: leakscope's ledger against jemalloc's own count, as redis reports it.
  t.true(within(snapshot.allocator.live_bytes!, info.allocator_allocated as number, 0.1), `live ${snapshot.allocator.live_bytes}, redis ${info.allocator_allocated}`);

  // Reclaim: leakscope's purge on one, redis's own MEMORY PURGE on the twin.
  const reclaim = await runCli(['reclaim', String(one.pid), '--json']);
  t.is(reclaim.code, 0, reclaim.stderr);
  const ours = JSON.parse(reclaim.stdout) as { before_rss_bytes: number; after_rss_bytes: number };
  const before = (await memoryInfo(16380)).used_memory_rss as number;
  await cli(16380, 'MEMORY', 'PURGE');
  await new Promise((r) => setTimeout(r, 200));
  const after = (await memoryInfo(16380)).used_memory_rss as number;
  const oursDrop = ours.before_rss_bytes - ours.after_rss_bytes;
  const theirsDrop = before - after;
  t.log(`reclaim gave back ${oursDrop}, MEMORY PURGE ${theirsDrop}`);
  t.true(Math.abs(oursDrop - theirsDrop) <= Math.max(8 * MiB, 0.25 * Math.max(oursDrop, theirsDrop)), `leakscope reclaim gave back ${oursDrop}, MEMORY PURGE ${theirsDrop}`);
});

test('redis-server started plainly and filled, then attached by pid: the slab fragmentation is measured as under leakscope run, and redis serves on', async (t) => {
  t.timeout(180_000);
  const redis = await fragmentedRedis(t, 16381, 'plain');
  const snapshot = await settledSnapshot(redis.pid);
  const info = await memoryInfo(16381);
  t.is(snapshot.agent.mode, 'inject');
  t.is(snapshot.allocator.name, 'jemalloc');
  t.truthy(snapshot.allocator.counted_since);
  againstRedis(t, snapshot, info, 0.05);
  t.is((await cli(16381, 'DBSIZE')).trim(), String(KEYS / 5));
  await cli(16381, 'SET', 'after-attach', 'yes');
  t.is((await cli(16381, 'GET', 'after-attach')).trim(), 'yes');
});

test("the agent's own threads take nothing of redis's jemalloc but the one arena its statistics cost, against a twin without leakscope", async (t) => {
  const plain = { port: 16382, ...(await startRedis(t, 16382, 'plain')) };
  const traced = { port: 16383, ...(await startRedis(t, 16383, 'run')) };
  // The agent's threads at work: its sampler's ticks and three snapshots answered by its server.
  let snapshot: Snapshot | null = null;
  for (let i = 0; i < 3; i++) snapshot = await snapshotOf(traced.pid);
  const [before, after] = [await jemallocState(plain.port), await jemallocState(traced.port)];
  t.true(before.arenas.length > 0 && before.background_threads > 0, JSON.stringify(before));
  // One arena more: the sampler's, which its first mallctl gets (jemalloc gives one to any thread that
  // calls it), named as the agent's and left out of the snapshot's arenas; at most one background thread for it.
  const own = snapshot!.allocator.stats.agent_arena as number;
  t.deepEqual(after.arenas, [...before.arenas, `arenas[${own}]:`].sort());
  t.true(after.background_threads <= before.background_threads + 1, JSON.stringify(after));
  t.false(snapshot!.allocator.arenas.some((a) => a.index === own));
  t.true(snapshot!.agent.notes.some((n) => n.startsWith(`jemalloc arena ${own} is the agent's sampler thread's`)));
  // The kernel's count: the agent's two threads, and the background thread of its arena if jemalloc started one.
  const extra = threadNames(traced.pid);
  for (const name of threadNames(plain.pid)) extra.splice(extra.indexOf(name), 1);
  const expected = ['leakscope-smpl', 'leakscope-srv'];
  if (after.background_threads > before.background_threads) expected.unshift('jemalloc_bg_thd');
  t.deepEqual(extra, expected);
});
