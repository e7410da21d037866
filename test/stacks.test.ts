// Allocation stacks end to end: programs with known allocation sites, run
// under the agent, named right by heap.stacks, by heap-growth and by
// `go tool pprof` on the profile `leakscope profile` writes.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { Symbolizer } from '../src/conn/symbolize.js';
import type { AllocationStack, Snapshot } from '../src/model/snapshot.js';
import type { EventLoopTruth } from './helpers/event-loop.js';
import { FIXTURES, RUST_FIXTURES, runCli, snapshotOf, snapshotUntil, startFixture } from './helpers/process.js';
import { schemaErrors } from './helpers/schema.js';

const run = promisify(execFile);

interface SitesTruth {
  pid: number;
  leak_function: string;
  leak_caller: string;
  leak_file: string;
  leak_line: number;
  leak_bytes_per_s: number;
}

function goBinary(): string {
  for (const candidate of ['/usr/local/go/bin/go', '/usr/lib/go/bin/go'])
    if (existsSync(candidate)) return candidate;
  return 'go';
}

async function pprofTop(file: string, extra: readonly string[] = []): Promise<string[]> {
  const { stdout } = await run(goBinary(), ['tool', 'pprof', '-top', ...extra, file], {
    env: { ...process.env, HOME: tmpdir(), GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
  });
  // The rows after the header "flat flat% sum% cum cum%".
  const lines = stdout.split('\n');
  const header = lines.findIndex((l) => /^\s*flat\s+flat%/.test(l));
  return lines.slice(header + 1).filter((l) => l.trim() !== '');
}

const growthFound = (s: Snapshot) => s.findings.some((f) => f.id === 'heap-growth');

function topLive(s: Snapshot): AllocationStack {
  const stack = s.heap?.stacks[0];
  if (!stack) throw new Error('no heap.stacks');
  return stack;
}

test('a C program leaking from one function among several that churn: heap.stacks, heap-growth and pprof name it', async (t) => {
  const fixture = await startFixture<SitesTruth>(t, 'alloc_sites');
  const truth = fixture.truth;
  const s = await snapshotUntil(fixture.pid, growthFound, { timeoutMs: 90_000 });
  t.is(schemaErrors(s), null);
  t.is(s.heap?.source, 'native');
  t.is(s.heap?.unwinder, 'dwarf');
  const leak = topLive(s);
  const own = leak.frames[0]!;
  t.is(own.function, truth.leak_function, JSON.stringify(leak.frames.slice(0, 3)));
  t.true(own.file?.endsWith(truth.leak_file), own.file ?? 'no file');
  t.is(own.line, truth.leak_line);
  t.is(leak.frames[1]?.function, truth.leak_caller);
  t.is(leak.site, `${truth.leak_function} (${truth.leak_file}:${truth.leak_line}) ← ${truth.leak_caller} (${truth.leak_file}:${leak.frames[1]!.line})`);
  // The churning sites allocated more than the leak but hold little.
  const churners = s.heap!.stacks.filter((x) => /parse_header|build_response/.test(x.site));
  t.true(churners.length >= 2, s.heap!.stacks.map((x) => x.site).join('\n'));
  t.true(churners.every((c) => c.live_bytes < leak.live_bytes / 10));
  t.true(churners.some((c) => (c.allocated_bytes ?? 0) > (leak.allocated_bytes ?? 0)));
  // Live bytes of the leaking stack: the bytes it kept, within sampling error.
  const kept = leak.live_history.length ? leak.live_bytes : 0;
  const elapsedS = (Date.parse(s.taken_at) - (s.history[0]?.t_ms ?? 0)) / 1000;
  t.true(kept > 0.5 * truth.leak_bytes_per_s * Math.min(elapsedS, 30), `live ${kept} after ${elapsedS} s`);
  const growth = s.findings.find((f) => f.id === 'heap-growth')!;
  t.deepEqual(growth.stacks?.[0], leak.id);
  // A stack stands for ~512 KiB: the sawtooth window's one or two live samples may take a few percent of the growth.
  t.regex(growth.message, new RegExp(`([89]\\d|100)% of the growth comes from ${truth.leak_function} \\(${truth.leak_file}:${truth.leak_line}\\) ← ${truth.leak_caller}`));
  t.regex(growth.remedy, /leakscope profile/);

  const dir = await mkdtemp(join(tmpdir(), 'leakscope-pprof-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = join(dir, 'a.pb.gz');
  const profiled = await runCli(['profile', String(fixture.pid), '--out', first]);
  t.is(profiled.code, 0, profiled.stderr);
  t.regex(profiled.stdout, new RegExp(`most in use: ${truth.leak_function}`));
  const top = await pprofTop(first);
  t.regex(top[0] ?? '', new RegExp(`\\s${truth.leak_function}$`), top.join('\n'));
  // By allocated bytes the churning response builder leads.
  const allocated = await pprofTop(first, ['-sample_index=alloc_space']);
  t.regex(allocated[0] ?? '', /\sbuild_response$/, allocated.join('\n'));
  // Two profiles apart: the difference is the leak alone.
  await new Promise((r) => setTimeout(r, 4000));
  const second = join(dir, 'b.pb.gz');
  t.is((await runCli(['profile', String(fixture.pid), '--out', second])).code, 0);
  const diff = await pprofTop(second, [`-diff_base=${first}`]);
  t.regex(diff[0] ?? '', new RegExp(`^\\s*[\\d.]+[kM]B .*\\s${truth.leak_function}$`), diff.join('\n'));
});

test('a leak that starts 20 s after start-up: named by heap-growth once it grows', async (t) => {
  const fixture = await startFixture<SitesTruth>(t, 'alloc_sites', ['--leak-after', '20']);
  const before = await snapshotOf(fixture.pid);
  t.false(before.findings.some((f) => f.id === 'heap-growth'));
  const s = await snapshotUntil(fixture.pid, growthFound, { timeoutMs: 120_000 });
  const growth = s.findings.find((f) => f.id === 'heap-growth');
  t.truthy(growth, s.pending_checks.map((p) => p.reason).join('; '));
  const named = s.heap!.stacks.find((x) => x.id === growth!.stacks?.[0]);
  t.is(named?.frames[0]?.function, fixture.truth.leak_function);
});

test('a C++ program attached by pid: demangled names, the leaking function named past the standard library, by heap-growth too', async (t) => {
  const fixture = await startFixture<{ pid: number; leak_bytes_per_s: number }>(t, 'cpp_cache');
  // A stack stands for ~512 KiB: enough of the leak that the churn's few live samples cannot reach a tenth of it.
  const s = await snapshotUntil(fixture.pid, (x) => growthFound(x) && (x.heap?.stacks[0]?.live_bytes ?? 0) > 12 * 1024 * 1024, { timeoutMs: 120_000 });
  const leak = topLive(s);
  t.regex(leak.site, /^fill \(cpp_cache\.cc:\d+\)/);
  const growth = s.findings.find((f) => f.id === 'heap-growth');
  t.is(growth?.stacks?.[0], leak.id, s.pending_checks.map((p) => p.reason).join('; '));
  t.regex(growth?.message ?? '', /\d+% of the growth comes from fill \(cpp_cache\.cc:\d+\)/);
  t.true(leak.frames.some((f) => f.function?.startsWith('std::vector<char, std::allocator<char> >::vector(')), leak.frames.map((f) => f.function).join('\n'));
  const mangled = s.heap!.stacks.flatMap((x) => x.frames).filter((f) => f.function?.startsWith('_Z'));
  t.deepEqual(mangled, []);
  // The workers' churn (over the several stacks of its site) allocated far more and holds next to nothing.
  const churn = s.heap!.stacks.filter((x) => x.site.startsWith('churn '));
  const churnAllocated = churn.reduce((sum, c) => sum + (c.allocated_bytes ?? 0), 0);
  const churnLive = churn.reduce((sum, c) => sum + c.live_bytes, 0);
  const detail = churn.map((c) => `${c.allocated_bytes} allocated, ${c.live_bytes} live`).join('; ');
  t.true(churnAllocated > 10 * leak.live_bytes, detail);
  t.true(churnLive < leak.live_bytes / 10, detail);
});

test('a Rust service through the crate: the leaking function, past the allocator shims and the agent, by heap-growth too', async (t) => {
  const fixture = await startFixture<{ pid: number; leak_function: string; leak_bytes_per_s: number }>(t, 'stack_leak', [], {
    dir: RUST_FIXTURES,
    withoutAgent: true,
  });
  const s = await snapshotUntil(fixture.pid, growthFound, { timeoutMs: 120_000 });
  t.is(s.agent.mode, 'crate');
  const leak = topLive(s);
  t.is(leak.frames[0]?.function, `stack_leak::${fixture.truth.leak_function}`, leak.frames.map((f) => f.function).join('\n'));
  t.is(leak.site, `stack_leak::${fixture.truth.leak_function} ← stack_leak::handle`);
  const growth = s.findings.find((f) => f.id === 'heap-growth');
  t.is(growth?.stacks?.[0], leak.id, s.pending_checks.map((p) => p.reason).join('; '));
  t.regex(growth?.message ?? '', new RegExp(`\\d+% of the growth comes from stack_leak::${fixture.truth.leak_function} ← stack_leak::handle`));
  t.false(s.heap!.stacks.some((x) => /leakscope|alloc_slow|__rust_alloc/.test(x.frames[0]?.function ?? '')));
});

test('LEAKSCOPE_STACKS=off: no stacks, and profile says why', async (t) => {
  const fixture = await startFixture<SitesTruth>(t, 'alloc_sites', [], { env: { LEAKSCOPE_STACKS: 'off' } });
  const s = await snapshotOf(fixture.pid);
  t.is(s.heap, undefined);
  const result = await runCli(['profile', String(fixture.pid), '--out', join(tmpdir(), `never-${fixture.pid}.pb.gz`)]);
  t.is(result.code, 1);
  t.regex(result.stderr, /^leakscope: pid \d+ has no allocation stacks: its agent takes no stacks \(LEAKSCOPE_STACKS=off/);
});

test('a stripped binary, and one replaced on disk since it started: addresses or the running file, and a note that says which', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'leakscope-symbols-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await run('cp', [join(FIXTURES, 'alloc_sites'), join(dir, 'stripped_sites')]);
  await run('strip', [join(dir, 'stripped_sites')]);
  await run('cp', [join(FIXTURES, 'alloc_sites'), join(dir, 'replaced_sites')]);
  const stripped = await startFixture<SitesTruth>(t, 'stripped_sites', [], { dir });
  const replaced = await startFixture<SitesTruth>(t, 'replaced_sites', [], { dir });
  // Another program where the second one's file was: a new build deployed under a running process.
  await run('cp', [join(FIXTURES, 'cpp_cache'), join(dir, 'replaced_sites.new')]);
  await run('mv', [join(dir, 'replaced_sites.new'), join(dir, 'replaced_sites')]);
  // A stack sample stands for ~512 KiB, so the bounded session window (530 KiB
  // true) reads 1 MiB with two samples live; 4 MiB is the leak (5 s of it).
  const hasLeak = (x: Snapshot) => (x.heap?.stacks[0]?.live_bytes ?? 0) > 4 * 1024 * 1024;

  const s = await snapshotUntil(stripped.pid, hasLeak);
  const module = s.heap!.modules.find((m) => m.path.endsWith('/stripped_sites'));
  t.is(module?.symbols, 'exported-symbols');
  t.true(s.heap!.notes.some((n) => /stripped_sites is stripped: only its exported functions have names/.test(n)), s.heap!.notes.join('\n'));
  const top = topLive(s);
  t.is(top.frames[0]?.function, null);
  t.regex(top.site, /^0x[0-9a-f]+ in stripped_sites/);

  // The file at its path is another program now; the names come from the one it runs.
  const r = await snapshotUntil(replaced.pid, hasLeak);
  t.is(r.heap!.modules.find((m) => m.path.endsWith('/replaced_sites (deleted)'))?.symbols, 'debug-info');
  t.true(
    r.heap!.notes.some((n) => new RegExp(`replaced_sites was replaced on disk since the process started: its names come from the file the process runs \\(/proc/${replaced.pid}/exe\\)`).test(n)),
    r.heap!.notes.join('\n'),
  );
  t.is(topLive(r).frames[0]?.function, replaced.truth.leak_function);
});

test('diff of two snapshots: the stack whose live bytes grew, first', async (t) => {
  const fixture = await startFixture<SitesTruth>(t, 'alloc_sites');
  const dir = await mkdtemp(join(tmpdir(), 'leakscope-diff-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = join(dir, 'a.json');
  const b = join(dir, 'b.json');
  t.is((await runCli(['snapshot', String(fixture.pid), '--out', a])).code, 0);
  await new Promise((r) => setTimeout(r, 8000));
  t.is((await runCli(['snapshot', String(fixture.pid), '--out', b])).code, 0);
  const text = await runCli(['diff', a, b]);
  t.is(text.code, 0, text.stderr);
  const lines = text.stdout.split('\n');
  const at = lines.indexOf('Allocation stacks whose live bytes grew:');
  t.true(at >= 0, text.stdout);
  t.regex(lines[at + 1] ?? '', new RegExp(`^\\s+\\+[\\d.]+ MiB\\s+\\d+%\\s+${fixture.truth.leak_function} \\(alloc_sites\\.c:${fixture.truth.leak_line}\\) ← ${fixture.truth.leak_caller}`));
  const json = JSON.parse((await runCli(['diff', a, b, '--json'])).stdout) as { stacks: { site: string; live_bytes: { delta: number } }[] };
  t.regex(json.stacks[0]?.site ?? '', new RegExp(`^${fixture.truth.leak_function} `));
  // About 8 s of a leak of leak_bytes_per_s, within what 512 KiB samples resolve.
  const delta = json.stacks[0]!.live_bytes.delta;
  t.true(delta > 0.4 * 8 * fixture.truth.leak_bytes_per_s && delta < 2 * 9 * fixture.truth.leak_bytes_per_s, `${delta}`);
});

test("a task site's memory by stack: the leaking site's live bytes come from its poll function, exactly when every block is sampled", async (t) => {
  // Every block a sample, and every sample a stack: the figures are exact.
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '12', '--interval-ms', '50'], {
    sampleInterval: 'exact',
    env: { LEAKSCOPE_STACK_INTERVAL: '1' },
  });
  const truth = fixture.truth;
  const s = await snapshotOf(fixture.pid, ['--idle-threshold', '1s']);
  t.is(schemaErrors(s), null);
  const leak = s.tasks.sites.find((x) => x.site === truth.sites.leak);
  t.is(leak?.live_bytes, truth.leak_live_bytes);
  const stacks = leak?.stacks ?? [];
  t.is(stacks.reduce((sum, x) => sum + x.live_bytes, 0), truth.leak_live_bytes, JSON.stringify(stacks));
  t.regex(stacks[0]?.site ?? '', /^heartbeat_poll \(event_loop\.c:\d+\)/);
  t.true(s.heap!.stacks.some((x) => x.id === stacks[0]!.id), 'the site names a stack the snapshot lists');
});

test('a library whose file on disk has another build id than the one loaded: no names from the wrong file, and a note', async (t) => {
  // As the agent would describe a module loaded from this path, built differently (another build id).
  const path = join(FIXTURES, 'alloc_sites');
  const module = { path, load_bias: '0x7f0000000000', build_id: '00112233445566778899aabbccddeeff00112233', segments: [{ start: '0x7f0000001000', end: '0x7f0000002000', file_offset: 4096 }] };
  const named = await new Symbolizer().symbolize(process.pid, [module], ['0x7f0000001234']);
  t.is(named.modules[0]?.symbols, 'build-id-mismatch');
  t.true(named.notes.some((n) => n === `${path} on disk is not the file the process loaded (its build id differs): its frames are addresses only`), named.notes.join('\n'));
  t.deepEqual(named.frames.get('0x7f0000001234')?.map((f) => f.function), [null]);
});
