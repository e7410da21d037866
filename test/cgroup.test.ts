// The memory cgroup in every snapshot, and the time a growing process has
// before its limit: read from the kernel's files (a v2 tree laid out in a
// temporary directory; v1 or v2, whichever this host has, for real).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { limitReach, limitSentence } from '../src/analysis/limit.js';
import { cgroupMemoryIn, cgroupPaths, memoryMounts } from '../src/conn/cgroup.js';
import { formatTimeLeft } from '../src/format.js';
import type { ProcessInfo, Snapshot } from '../src/model/snapshot.js';
import { memoryCgroup } from './helpers/cgroup.js';
import { MiB, snapshotUntil, startFixture } from './helpers/process.js';

const GiB = 1024 * MiB;

test('the hierarchies that account memory, from mountinfo: v2, and v1 only with the memory controller', (t) => {
  const mountinfo = [
    '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
    '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
    '35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
    '41 31 0:38 / /sys/fs/cgroup/unified\\040v2 rw,relatime - cgroup2 cgroup2 rw',
  ].join('\n');
  t.deepEqual(memoryMounts(mountinfo), [
    { version: 1, point: '/sys/fs/cgroup/memory', root: '/docker/abc' },
    { version: 2, point: '/sys/fs/cgroup/unified v2', root: '/' },
  ]);
  t.deepEqual(cgroupPaths('12:pids:/a\n4:memory:/process_api/x\n0::/user.slice/u.scope\n'), { v1: '/process_api/x', v2: '/user.slice/u.scope' });
  t.deepEqual(cgroupPaths('0::/\n'), { v1: null, v2: '/' });
});

test('cgroup v2: the tightest memory.max on the way up, the working set and the OOM kills', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'leakscope-cgroup-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const write = (path: string, files: Record<string, string>) => {
    mkdirSync(join(root, path), { recursive: true });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(root, path, name), text);
  };
  write('/', { 'memory.max': 'max\n' });
  write('/kubepods', { 'memory.max': String(2 * GiB) });
  write('/kubepods/pod1', { 'memory.max': String(3 * GiB) });
  write('/kubepods/pod1/app', {
    'memory.max': 'max\n',
    'memory.high': String(1536 * MiB),
    'memory.current': String(900 * MiB),
    'memory.stat': `anon ${700 * MiB}\nfile ${180 * MiB}\nkernel ${20 * MiB}\ninactive_file ${100 * MiB}\nactive_file ${80 * MiB}\n`,
    'memory.events': 'low 0\nhigh 3\nmax 0\noom 1\noom_kill 1\n',
  });
  const memory = await cgroupMemoryIn([{ version: 2, point: root, root: '/' }], { v1: null, v2: '/kubepods/pod1/app' });
  t.deepEqual(memory, {
    version: 2,
    path: '/kubepods/pod1/app',
    limit_bytes: 2 * GiB,
    limit_path: '/kubepods',
    high_bytes: 1536 * MiB,
    usage_bytes: 900 * MiB,
    working_set_bytes: 800 * MiB,
    anon_bytes: 700 * MiB,
    file_bytes: 180 * MiB,
    kernel_bytes: 20 * MiB,
    oom_kills: 1,
  });
  // No memory controller in this subtree: nothing to say, rather than zeros.
  write('/other', { 'cgroup.procs': '' });
  t.is(await cgroupMemoryIn([{ version: 2, point: root, root: '/' }], { v1: null, v2: '/other' }), null);
});

test('time to the limit: headroom of the working set over the measured rate, worded to the minute', (t) => {
  const process = (limit: number | null, workingSet: number): ProcessInfo => ({
    rss_bytes: 0,
    threads: 1,
    cgroup: {
      version: 2,
      path: '/app',
      limit_bytes: limit,
      limit_path: limit === null ? null : '/app',
      high_bytes: null,
      usage_bytes: workingSet,
      working_set_bytes: workingSet,
      anon_bytes: workingSet,
      file_bytes: 0,
      kernel_bytes: null,
      oom_kills: 0,
    },
  });
  const rate = 0.1 * MiB;
  const workingSet = 2 * GiB - 15_840 * rate; // 1,584 MiB of headroom: 4 h 24 min at 0.1 MiB/s
  t.is(Math.round(limitReach(process(2 * GiB, workingSet), rate)!.seconds), 15_840);
  t.is(limitSentence(process(2 * GiB, workingSet), rate), ' At 102.4 KiB/s, the 2.0 GiB memory limit of cgroup /app is reached in about 4 h 24 min (1.5 GiB of headroom).');
  t.regex(limitSentence(process(GiB, GiB + MiB), rate), /working set is at the 1\.0 GiB memory limit of cgroup \/app: the OOM killer may act at any moment/);
  t.is(limitSentence(process(null, GiB), rate), '');
  t.is(limitSentence({ rss_bytes: 0, threads: 1 }, rate), '');
  t.is(limitSentence(process(GiB, MiB), 0), '');
  t.deepEqual(
    [30_000, 119_000, 17 * 60_000, 3 * 3_600_000 + 40 * 60_000, 5 * 3_600_000, 6 * 86_400_000].map(formatTimeLeft),
    ['30 s', '119 s', '17 min', '3 h 40 min', '5 h', '6 days'],
  );
});

test('a process in a memory cgroup with a limit: the snapshot names the cgroup and the limit, in every mode', async (t) => {
  const cgroup = await memoryCgroup(t, GiB);
  // It keeps allocating, so pages are charged to the cgroup it was moved to.
  const fixture = await startFixture<{ pid: number }>(t, 'growing_leak', [], { withoutAgent: true });
  await cgroup.add(fixture.pid);
  for (const mode of [['--no-inject'], []]) {
    const snapshot = await snapshotUntil(fixture.pid, (s) => (s.process.cgroup?.usage_bytes ?? 0) > 0, { extra: mode, timeoutMs: 5000 });
    t.is(snapshot.agent.mode, mode.length ? 'proc' : 'inject');
    const memory = snapshot.process.cgroup!;
    t.truthy(memory, 'a cgroup is read');
    t.is(memory.version, cgroup.version);
    t.is(memory.path, cgroup.path);
    t.is(memory.limit_bytes, GiB);
    t.is(memory.limit_path, cgroup.path);
    t.true(memory.usage_bytes > 0 && memory.working_set_bytes <= memory.usage_bytes);
    t.is(memory.oom_kills, 0);
  }
});

test('heap-growth under a limit says how long until the limit at the measured rate', async (t) => {
  const cgroup = await memoryCgroup(t, GiB);
  const fixture = await startFixture<{ pid: number; leak_bytes_per_s: number }>(t, 'growing_leak', [], { counts: 'exact' });
  await cgroup.add(fixture.pid);
  const snapshot: Snapshot = await snapshotUntil(fixture.pid, (s) => !s.pending_checks.some((p) => p.id === 'heap-growth'));
  const finding = snapshot.findings.find((f) => f.id === 'heap-growth');
  t.truthy(finding, JSON.stringify(snapshot.pending_checks));
  const m = /At ([\d.]+ [KMG]iB)\/s, the 1\.0 GiB memory limit of cgroup (\S+) is reached in about (\d+) min \(([\d.]+) MiB of headroom\)\./.exec(finding!.message);
  t.truthy(m, finding!.message);
  t.is(m![2], cgroup.path);
  // The headroom is the limit less the working set read with the snapshot; the time, that over the measured rate.
  const headroom = GiB - snapshot.process.cgroup!.working_set_bytes;
  t.true(Math.abs(Number(m![4]) * MiB - headroom) <= 0.05 * MiB);
  t.is(Number(m![3]), Math.round(headroom / finding!.value / 60));
  // And against the fixture's own rate: the same to within the rate's own error.
  const truthMinutes = headroom / fixture.truth.leak_bytes_per_s / 60;
  t.true(Number(m![3]) >= 0.9 * truthMinutes && Number(m![3]) <= 1.5 * truthMinutes, `${m![3]} min, from the true rate ${truthMinutes.toFixed(1)} min`);
});
