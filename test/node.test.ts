// Real Node.js: the quote service (fixtures/node/service.mjs) started bare,
// attached by pid through its inspector while it serves; and the same
// service under `leakscope run`. The service answers its own truth at
// /truth. Inspector tests run one at a time: they share port 9229.
import { createServer, type Server } from 'node:net';
import { relative, resolve } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { ownLoopbackListeners } from '../src/conn/inspector-port.js';
import { CAPTURE_BURST_MS, CAPTURE_TIME_SHARE } from '../src/node-agent/capture-budget.cjs';
import type { Snapshot } from '../src/model/snapshot.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { Client } from './helpers/http.js';
import { NODE_FIXTURES, oneLineError, runCli, snapshotOf, snapshotUntil, startFixture } from './helpers/process.js';
import { schemaErrors } from './helpers/schema.js';
import { gotTarget } from './helpers/got.js';
import { findingsAt } from './helpers/task-sites.js';

interface Ready {
  pid: number;
  port: number;
}

interface WorkerTruth {
  thread_id: number;
  parked: number;
  intervals: number;
  sites: { park: string; poll: string };
}

interface ServiceTruth {
  parked: number;
  intervals: number;
  open_spans: number;
  workers: WorkerTruth[];
  sites: { cart?: string; poll?: string; open_span?: string; ended_span?: string };
}

const EXISTED = '(existed at attach)';

/** A site as the bridge names it: relative to the service's working directory (ours). */
const siteName = (absolute: string | undefined) => (absolute === EXISTED ? EXISTED : relative(process.cwd(), absolute ?? '?'));

/** leakscope.tasks.idle counts tasks idle this long in these tests (the service's environment sets it). */
const GAUGE_IDLE_MS = 1000;

async function startService(t: ExecutionContext, entry: 'service.mjs' | 'service.cjs', nodeArgs: readonly string[] = [], underRun = false) {
  const fixture = await startFixture<Ready>(t, entry, [], {
    withoutAgent: !underRun,
    dir: NODE_FIXTURES,
    interpreter: process.execPath,
    env: { LEAKSCOPE_IDLE_THRESHOLD_MS: String(GAUGE_IDLE_MS), ...(nodeArgs.length ? { NODE_OPTIONS: nodeArgs.join(' ') } : {}) },
  });
  const client = new Client(fixture.truth.port);
  t.teardown(() => client.close());
  return { fixture, client };
}

async function leak(client: Client, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await client.get('/cart');
    await client.get('/poll');
    await client.get('/trace');
    await client.get('/quote');
  }
}

/** Ports the service itself listens on, apart from its HTTP port: the inspector's, if open. */
async function otherListeners(pid: number, httpPort: number): Promise<number[]> {
  return (await ownLoopbackListeners(pid)).map((l) => l.port).filter((p) => p !== httpPort);
}

type Points = { attributes: Record<string, string>; value: number }[];

/** The service's OpenTelemetry metrics of the `leakscope` meter, collected now through its own reader. */
async function leakscopeGauges(client: Client): Promise<Record<string, Points> | undefined> {
  return (await client.json<Record<string, Record<string, Points>>>('/metrics')).leakscope;
}

/** A gauge's value for one task kind, or for the whole process. */
function gauge(gauges: Record<string, Points> | undefined, name: string, kind?: string): number | undefined {
  return gauges?.[name]?.find((p) => (kind === undefined ? true : p.attributes['leakscope.task.kind'] === kind))?.value;
}

function live(s: Snapshot, site: string | undefined, kind: string) {
  const found = s.tasks.sites.find((x) => x.site === siteName(site) && x.kind === kind);
  return found ? { live: found.live, spawned: found.spawned, completed: found.completed } : null;
}

test.serial('attach by pid: exact sites of pending promises, intervals and open spans; the inspector closes again; the service serves on', async (t) => {
  const { fixture, client } = await startService(t, 'service.cjs');
  await leak(client, 4); // before attach: counted without a site
  const first = await snapshotOf(fixture.pid, ['--idle-threshold', '1s']);
  t.is(first.agent.mode, 'node');
  t.deepEqual(await otherListeners(fixture.pid, fixture.truth.port), [], 'the inspector is closed after attach');
  t.is(live(first, EXISTED, 'promise')?.live, 4);
  t.is(first.node?.promises.existed_at_attach, 4, 'the four parked carts were pending at attach');
  t.true((first.node?.timers.existed_at_attach ?? 0) >= 4, 'the four intervals were found on the heap');
  t.true(first.agent.notes.some((n) => /attached late: native allocations are counted from/.test(n)), first.agent.notes.join('; '));
  t.truthy(first.allocator.counted_since, 'the heap ledger counts from attach');

  await leak(client, 40);
  const truth = await client.json<ServiceTruth>('/truth');
  t.is(truth.parked, 44);
  await new Promise((r) => setTimeout(r, 1200)); // past the idle threshold
  const after = await snapshotOf(fixture.pid, ['--idle-threshold', '1s']);
  t.is(schemaErrors(after), null, 'an attached Node snapshot conforms to the schema');
  t.deepEqual(live(after, truth.sites.cart, 'promise'), { live: 40, spawned: 40, completed: 0 });
  t.deepEqual(live(after, truth.sites.poll, 'interval'), { live: 40, spawned: 40, completed: 0 });
  t.deepEqual(live(after, truth.sites.open_span, 'span'), { live: 40, spawned: 40, completed: 0 });
  t.deepEqual(live(after, truth.sites.ended_span, 'span'), { live: 0, spawned: 40, completed: 40 });
  t.is(after.node?.spans.api, 'hooked');
  t.is(after.node?.promises.sample_interval, 1, 'at this rate every promise has its site');
  // Only what leaks stays live: the quote chain's promises all settled.
  // (Timers from before attach are the keep-alive sockets' own, Node's.)
  const liveSites = after.tasks.sites
    .filter((s) => s.live > 0 && `${s.kind}@${s.site}` !== `timer@${EXISTED}`)
    .map((s) => `${s.kind}@${s.site}`)
    .sort();
  t.deepEqual(liveSites, [`interval@${EXISTED}`, `interval@${siteName(truth.sites.poll)}`, `promise@${EXISTED}`, `promise@${siteName(truth.sites.cart)}`, `span@${siteName(truth.sites.open_span)}`].sort());
  const idle = after.findings.find((f) => f.id === 'idle-forever' && f.subject.label === siteName(truth.sites.cart));
  t.is(idle?.summary, `40 promises created at ${siteName(truth.sites.cart)} have been pending for over 1 s`);
  t.deepEqual(findingsAt(after, 'idle-forever').find(([label]) => label === siteName(truth.sites.open_span)), [siteName(truth.sites.open_span), 40]);
  t.true(Object.keys(after.node?.handles ?? {}).includes('tcp'), 'libuv handles are counted');
  const roles = after.threads.map((th) => th.role ?? '-');
  t.is(after.threads.find((th) => th.tid === fixture.pid)?.role, 'main');
  t.deepEqual(
    ['libuv-threadpool', 'v8-platform', 'v8-delayed-tasks', 'inspector-signal'].map((role) => roles.filter((r) => r === role).length),
    [4, 4, 1, 1],
    'threads named by role though Node names them all "node"',
  );
  t.true((after.node?.v8_heap.used_bytes ?? 0) > 0);
  // leakscope's gauges ride on the service's own OpenTelemetry meter provider.
  t.deepEqual(after.node?.metrics, { published: true, idle_threshold_ms: GAUGE_IDLE_MS });
  const gauges = await leakscopeGauges(client);
  t.is(gauge(gauges, 'leakscope.tasks.idle', 'promise'), truth.parked, 'every parked cart, and nothing else, is a promise idle past the threshold');
  t.is(gauge(gauges, 'leakscope.tasks.idle', 'span'), truth.open_spans - 4, 'spans opened before attach are not seen');
  t.true((gauge(gauges, 'leakscope.tasks.live', 'interval') ?? 0) >= truth.intervals);
  t.is(gauge(gauges, 'leakscope.heap.unreclaimed'), undefined, 'no heap gauges from a ledger that began late');
  t.is((await client.get('/quote')).body, '1700\n', 'the service still answers');
  t.deepEqual(await otherListeners(fixture.pid, fixture.truth.port), []);
});

const MiB = 1 << 20;

test.serial('attached late: the native heap is counted from attach through GOT hooks (64 MiB of Buffers, within 10 %), and the hooks come out when the bridge goes dormant', async (t) => {
  const { fixture, client } = await startService(t, 'service.mjs');
  t.regex(await gotTarget(fixture.pid, 'malloc'), /\/libc\.so/, "before attach the executable calls libc's malloc");
  // A linger long enough for the steps below on a loaded machine: the hooks must stay in until the end.
  const first = await snapshotOf(fixture.pid, ['--linger', '4s']);
  t.truthy(first.allocator.counted_since);
  for (const fn of ['malloc', 'free', 'calloc', 'realloc'])
    t.regex(await gotTarget(fixture.pid, fn), /\/leakscope\.node$/, `attached: ${fn} goes through the hook`);
  await client.get('/hold?mb=64');
  const truth = await client.json<{ held_bytes: number }>('/truth');
  t.is(truth.held_bytes, 64 * MiB);
  const held = await snapshotOf(fixture.pid);
  t.is(schemaErrors(held), null, 'a snapshot with a late ledger conforms to the schema');
  const growth = (held.allocator.live_bytes ?? 0) - (first.allocator.live_bytes ?? 0);
  t.true(Math.abs(growth - truth.held_bytes) < 0.1 * truth.held_bytes, `live grew by ${growth} B for ${truth.held_bytes} B held`);
  const main = held.threads.find((th) => th.tid === fixture.pid);
  t.true((main?.heap?.allocated_bytes ?? 0) >= truth.held_bytes, 'the main thread allocated them');
  t.true((main?.heap?.live_bytes ?? 0) >= 0.9 * truth.held_bytes, 'and holds them');
  t.is(main?.heap?.freed_bytes, null, 'frees are not counted: blocks from before attach are freed too');
  t.is(held.allocator.freed_bytes, null);
  t.is(held.history.find((h) => Date.parse(first.allocator.counted_since!) > h.t_ms)?.live_bytes ?? null, null, 'no live bytes in history from before counting');
  t.is(held.allocator.counted_since, first.allocator.counted_since, 'counted all along since attach');
  // The last client left: once the linger (4 s) is over the bridge is dormant.
  const dormantBy = Date.now() + 15_000;
  while ((await gotTarget(fixture.pid, 'malloc')).endsWith('leakscope.node') && Date.now() < dormantBy)
    await new Promise((r) => setTimeout(r, 250));
  for (const fn of ['malloc', 'free', 'calloc', 'realloc'])
    t.regex(await gotTarget(fixture.pid, fn), /\/libc\.so/, `dormant: ${fn} is libc's again`);
  t.is((await client.get('/quote')).body, '1700\n', 'the service still answers');
});

/** Snapshots until the bridges of these workers answer in it (the main bridge joins workers as they come, asynchronously). */
async function withWorkers(t: ExecutionContext, pid: number, threadIds: readonly number[], args: readonly string[] = []): Promise<Snapshot> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const snapshot = await snapshotOf(pid, args);
    const joined = new Set(snapshot.node?.workers.map((w) => w.thread_id));
    if (threadIds.every((id) => joined.has(id))) return snapshot;
    if (Date.now() > deadline) {
      t.fail(`workers ${threadIds.join(', ')} never joined: ${[...joined].join(', ')} did; ${snapshot.agent.notes.join('; ')}`);
      return snapshot;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

test.serial('worker threads, attached late: each gets a bridge of its own (those running and those started after), with its loop, promise sites and timers; a worker that ends takes its tasks along', async (t) => {
  const { fixture, client } = await startService(t, 'service.mjs');
  const early = Number((await client.get('/worker?park=5')).body); // 5 promises and an interval before attach
  const first = await snapshotOf(fixture.pid); // attach waits for the workers running then
  t.deepEqual(first.node?.workers.map((w) => w.thread_id), [early]);
  const earlyFacts = first.node?.workers.find((w) => w.thread_id === early);
  t.is(earlyFacts?.promises.existed_at_attach, 5, 'the promises pending in the worker at attach were found on its heap');
  t.is(earlyFacts?.timers.existed_at_attach, 1, 'and its interval');
  t.regex(earlyFacts?.script ?? '', /fixtures\/node\/pricing-worker\.mjs$/);
  t.is(first.threads.find((th) => th.tid === earlyFacts?.tid)?.role, 'worker', "the worker's thread is named by its role");
  t.deepEqual(await otherListeners(fixture.pid, fixture.truth.port), [], 'the inspector is closed after attach');

  await client.get(`/worker-park?thread=${early}&count=7`);
  const late = Number((await client.get('/worker?park=3')).body); // started after attach: joined by the main bridge
  await withWorkers(t, fixture.pid, [early, late]);
  await client.get(`/worker-park?thread=${late}&count=4`);
  await new Promise((r) => setTimeout(r, 1200)); // past the idle threshold
  const truth = await client.json<ServiceTruth>('/truth');
  t.deepEqual(truth.workers.map((w) => w.parked), [12, 7]);
  const park = truth.workers[0]!.sites.park;
  const after = await snapshotOf(fixture.pid, ['--idle-threshold', '1s']);
  t.is(schemaErrors(after), null, 'a snapshot with workers conforms to the schema');
  // The late worker's three parked at its start: before its bridge (found on
  // its heap, no site) or after it (at the site), as the worker's module
  // loading and the bridge's start fall; one or the other, every one counted.
  const lateExisted = after.node?.workers.find((w) => w.thread_id === late)?.promises.existed_at_attach ?? -1;
  t.true(lateExisted === 0 || lateExisted === 3, `late worker: ${lateExisted} existed at join`);
  const atSite = 7 + 4 + (3 - lateExisted);
  t.deepEqual(live(after, park, 'promise'), { live: atSite, spawned: atSite, completed: 0 }, 'parked after each worker joined, at their site');
  t.deepEqual(after.node?.workers.map((w) => [w.thread_id, w.promises.existed_at_attach, w.state]), [[early, 5, 'recording'], [late, lateExisted, 'recording']]);
  t.is(live(after, EXISTED, 'promise')?.live, 5 + lateExisted, "the workers' promises from before they joined, and the main thread had none pending");
  t.is(findingsAt(after, 'idle-forever').find(([label]) => label === siteName(park))?.[1], atSite);
  t.is(after.findings.find((f) => f.id === 'idle-forever' && f.subject.label === siteName(park))?.summary, `${atSite} promises created at ${siteName(park)} have been pending for over 1 s`);
  for (const worker of after.node?.workers ?? []) {
    t.true(worker.responsive);
    t.true((worker.handles.timer?.active ?? 0) >= 1, `worker ${worker.thread_id}'s own loop has its interval's timer`);
    t.true(worker.v8_heap.used_bytes > 0);
    t.is(after.threads.find((th) => th.tid === worker.tid)?.role, 'worker');
  }
  t.not(after.node?.workers[0]?.tid, after.node?.workers[1]?.tid);

  await client.get(`/worker-stop?thread=${early}`);
  const stopped = await snapshotOf(fixture.pid);
  t.deepEqual(stopped.node?.workers.map((w) => w.thread_id), [late], 'the ended worker left');
  t.deepEqual(live(stopped, park, 'promise'), { live: atSite - 7, spawned: atSite, completed: 7 }, 'its promises ended with its isolate');
  t.is((await client.get('/quote')).body, '1700\n', 'the service still answers');
});

test.serial('an ESM service whose inspector is open already: used and left open', async (t) => {
  const { fixture, client } = await startService(t, 'service.mjs', ['--inspect=127.0.0.1:0']);
  const before = await otherListeners(fixture.pid, fixture.truth.port);
  t.is(before.length, 1, 'the service opened its own inspector');
  await leak(client, 3);
  const snapshot = await snapshotOf(fixture.pid);
  t.is(snapshot.agent.mode, 'node');
  t.is(snapshot.node?.promises.existed_at_attach, 3);
  t.deepEqual(await otherListeners(fixture.pid, fixture.truth.port), before, 'left as found');
});

test.serial('a Node without process.getBuiltinModule and with an ESM entry point (as before 20.16): a one-line error saying what to do; the target lives on with its inspector closed', async (t) => {
  const fixture = await startFixture<{ pid: number; version: string }>(t, 'old_node.mjs', [], {
    withoutAgent: true,
    dir: NODE_FIXTURES,
    interpreter: process.execPath,
  });
  const result = await runCli(['snapshot', String(fixture.pid), '--json']);
  oneLineError(t, result, new RegExp(`Node ${fixture.truth.version.replace(/\./g, '\\.')} has neither process.getBuiltinModule nor a CommonJS main module .*start it with 'leakscope run'`));
  t.notThrows(() => process.kill(fixture.pid, 0), 'the target is alive');
  t.deepEqual(await otherListeners(fixture.pid, -1), [], 'the inspector leakscope opened is closed again');
});

test.serial('a target that exits while its inspector is being used: said at once, not after the timeout', async (t) => {
  const { fixture } = await startService(t, 'service.mjs');
  const cli = runCli(['snapshot', String(fixture.pid), '--json']);
  // Killed once its inspector is open, in the middle of the attach.
  const deadline = Date.now() + 10_000;
  while ((await otherListeners(fixture.pid, fixture.truth.port)).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  // Stopped there, so that the attach cannot finish first; then killed.
  process.kill(fixture.pid, 'SIGSTOP');
  await new Promise((r) => setTimeout(r, 300));
  process.kill(fixture.pid, 'SIGKILL');
  const killedAt = Date.now();
  const result = await cli;
  // Said by the attach, or by the snapshot around it, whichever polls first.
  oneLineError(t, result, new RegExp(`pid ${fixture.pid} exited while leakscope was (loading its agent through the Node inspector|taking its snapshot)`));
  // The attach's own timeout is 10 s: an exit is noticed within the 100 ms the CLI polls at, and its start-up.
  t.true(Date.now() - killedAt < 5000, `said ${Date.now() - killedAt} ms after the exit`);
});

test.serial('the inspector port taken by another process: a one-line error naming it; the target is untouched', async (t) => {
  const blocker: Server = createServer();
  await new Promise<void>((r, reject) => blocker.once('error', reject).listen(9229, '127.0.0.1', () => r()));
  t.teardown(() => blocker.close());
  const { fixture, client } = await startService(t, 'service.mjs');
  const result = await runCli(['snapshot', String(fixture.pid), '--json']);
  oneLineError(t, result, new RegExp(`127\\.0\\.0\\.1:9229 is taken by pid ${process.pid}`));
  t.is((await client.get('/quote')).body, '1700\n');
});

test.serial('after the last client leaves and the linger ends, the hooks are out: nothing created meanwhile is counted, and a new attach records again', async (t) => {
  const { fixture, client } = await startService(t, 'service.mjs');
  const worker = Number((await client.get('/worker')).body);
  const first = await withWorkers(t, fixture.pid, [worker], ['--linger', '1s']);
  t.is(first.node?.linger_ms, 1000);
  await leak(client, 2);
  await new Promise((r) => setTimeout(r, 2000)); // linger over: dormant
  await leak(client, 5); // while dormant: not seen
  await client.get(`/worker-park?thread=${worker}&count=6`); // nor in the worker
  const late = Number((await client.get('/worker')).body); // nor a worker started meanwhile
  t.is(await leakscopeGauges(client), undefined, 'dormant: no leakscope gauges on the meter');
  const truth = await client.json<ServiceTruth>('/truth');
  const woken = await snapshotOf(fixture.pid);
  t.true(Date.parse(woken.node?.recording_since ?? '') > Date.parse(first.node?.recording_since ?? ''), 'recording began again');
  t.is(live(woken, truth.sites.cart, 'promise')?.live ?? 0, 0, 'the two tracked before dormancy ended with it; the five since were never seen');
  t.is(live(woken, truth.workers[0]?.sites.park, 'promise')?.live ?? 0, 0, "the worker's, parked while dormant, were never seen");
  await withWorkers(t, fixture.pid, [late]); // awake: the main bridge joins the one started while dormant
  await leak(client, 3);
  // Counted exactly (every promise captured, the init hook on all the time), as the three are few: this
  // asserts that mode, and waits for the count rather than for a moment (a loaded machine answers later).
  const again = await snapshotUntil(fixture.pid, (s) => (live(s, truth.sites.cart, 'promise')?.live ?? 0) >= 3, { timeoutMs: 15_000 });
  t.is(again.node?.promises.sparsest_sample_interval ?? again.node?.promises.sample_interval, 1, 'every promise captured');
  t.is(again.node?.promises.init_hook_interval ?? 1, 1, 'the init hook on all the time');
  t.is(live(again, truth.sites.cart, 'promise')?.live, 3);
  t.is(again.node?.state, 'recording');
  t.deepEqual(again.node?.workers.map((w) => w.state), ['recording', 'recording'], 'the workers woke with the main thread');
  t.is(gauge(await leakscopeGauges(client), 'leakscope.tasks.live', 'span'), 3, 'awake: the gauges are back');
});

test.serial('a busy event loop: the snapshot still comes, with the last answer and a note', async (t) => {
  const { fixture, client } = await startService(t, 'service.mjs');
  await leak(client, 2);
  await snapshotOf(fixture.pid); // attached, and one answer from the loop
  await client.get('/spin?ms=5000');
  const busy = await snapshotOf(fixture.pid);
  t.false(busy.node?.responsive);
  t.true(busy.agent.notes.some((n) => /event loop did not answer within \d+ ms/.test(n)), busy.agent.notes.join('; '));
  t.true(busy.tasks.sites.some((s) => s.kind === 'promise' && s.live === 2), 'the task registry needs no JS to answer');
});

test('leakscope run -- node: sites from the first line, and the native heap ledger counts', async (t) => {
  const { fixture, client } = await startService(t, 'service.mjs', [], true);
  await leak(client, 6);
  const worker = Number((await client.get('/worker?park=2')).body);
  const truth = await client.json<ServiceTruth>('/truth');
  const snapshot = await snapshotOf(fixture.pid);
  // The preload runs in the worker too: its promises and interval have their sites from its first line.
  const workerTruth = truth.workers[0]!;
  t.deepEqual(live(snapshot, workerTruth.sites.park, 'promise'), { live: 2, spawned: 2, completed: 0 });
  t.deepEqual(live(snapshot, workerTruth.sites.poll, 'interval'), { live: 1, spawned: 1, completed: 0 });
  const workerFacts = snapshot.node?.workers.find((w) => w.thread_id === worker);
  t.is(workerFacts?.promises.existed_at_attach, 0);
  const workerThread = snapshot.threads.find((th) => th.tid === workerFacts?.tid);
  t.is(workerThread?.role, 'worker');
  t.true((workerThread?.heap?.allocated_bytes ?? 0) > 0, "the worker's thread has a heap ledger");
  t.is(snapshot.agent.mode, 'preload');
  t.is(schemaErrors(snapshot), null, 'a Node snapshot under run conforms to the schema');
  t.is(snapshot.node?.from_start, true);
  t.is(snapshot.node?.promises.existed_at_attach, 0);
  t.deepEqual(live(snapshot, truth.sites.cart, 'promise'), { live: 6, spawned: 6, completed: 0 });
  t.deepEqual(live(snapshot, truth.sites.open_span, 'span'), { live: 6, spawned: 6, completed: 0 });
  t.true((snapshot.allocator.live_bytes ?? 0) > 0, 'the preloaded agent counts allocations');
  const main = snapshot.threads.find((th) => th.tid === fixture.pid);
  t.true((main?.heap?.allocated_bytes ?? 0) > 0, 'the main thread has a heap ledger');
  // Thread roles, against the start routines the preloaded agent saw at pthread_create.
  t.is(main?.role, 'main');
  const routinesOf = (role: string) => [...new Set(snapshot.threads.filter((th) => th.role === role).map((th) => th.start_routine))];
  t.is(snapshot.threads.filter((th) => th.role === 'libuv-threadpool').length, 4, 'UV_THREADPOOL_SIZE threads');
  t.is(routinesOf('libuv-threadpool').length, 1, 'all pool threads run one routine');
  t.is(snapshot.threads.filter((th) => th.role === 'v8-platform').length, 4, '--v8-pool-size threads');
  t.is(routinesOf('v8-platform').length, 1);
  t.notDeepEqual(routinesOf('v8-platform'), routinesOf('libuv-threadpool'));
  t.regex(routinesOf('v8-delayed-tasks')[0] ?? '', /DelayedTaskScheduler/);
  // With a ledger, the heap gauges are published too.
  const gauges = await leakscopeGauges(client);
  const heapLive = gauge(gauges, 'leakscope.heap.live') ?? 0;
  const ledgerLive = (await snapshotOf(fixture.pid)).allocator.live_bytes ?? 0;
  t.true(heapLive > ledgerLive / 2 && heapLive < ledgerLive * 2, `gauge ${heapLive} B against the snapshot's ${ledgerLive} B`);
  t.is(gauge(gauges, 'leakscope.heap.unreclaimed'), undefined, 'Node runs on glibc, which has no unreclaimed state');
  t.true((gauge(gauges, 'leakscope.memory.retained') ?? -1) >= 0);
  t.is(gauge(gauges, 'leakscope.tasks.live', 'span'), truth.open_spans);
});

interface FloodTruth {
  pid: number;
  parked: number;
  created_settling: number;
  sites: { parked: string; settling: string };
}

test('promises faster than sites can be captured: sampled within the time budget, and the weighted counts come near the truth', async (t) => {
  // 4 s of steps that each await a promise and park one forever: millions of promises.
  const floodMs = 4000;
  const fixture = await startFixture<FloodTruth>(t, 'promise_flood.mjs', [String(floodMs)], { dir: NODE_FIXTURES, interpreter: process.execPath });
  const truth = fixture.truth;
  const parkedSite = siteName(truth.sites.parked);
  // Quiet now: the capture budget (every 250 ms) and the init hook's windows
  // (judged over 25 ms of hook time) see the flood is over, within seconds.
  const quietBy = Date.now() + 5000;
  let snapshot: Snapshot;
  do {
    await new Promise((r) => setTimeout(r, 500));
    snapshot = await snapshotOf(fixture.pid, ['--tasks', '100000', '--tasks-site', parkedSite]);
  } while (snapshot.node!.promises.sample_interval > 1 && Date.now() < quietBy);
  t.true(truth.created_settling > 200_000, `${truth.created_settling} steps`);
  t.is(schemaErrors(snapshot), null, 'a sampled Node snapshot (weighted items) conforms to the schema');
  const promises = snapshot.node!.promises;
  t.true((promises.sparsest_sample_interval ?? 1) >= 64, `sampling engaged (one in ${promises.sparsest_sample_interval})`);
  t.is(promises.sample_interval, 1, 'dense again once the flood is over');
  t.true(snapshot.agent.notes.some((n) => /promise counts are estimates/.test(n)), snapshot.agent.notes.join('; '));
  // Captures may take the burst allowance and their share of the wall clock
  // since recording began (twice that: the cost is learnt as it goes): the
  // flood, and the start-up before it, which is most of a second on a
  // loaded machine. capture_ms is the thread's CPU time, so a capture
  // preempted by another process is not charged for the time it waited.
  const recordingMs = Date.parse(snapshot.taken_at) - Date.parse(snapshot.node!.recording_since);
  t.true(recordingMs >= floodMs, `recording for ${recordingMs} ms`);
  const allowedMs = CAPTURE_BURST_MS + CAPTURE_TIME_SHARE * recordingMs;
  t.true((promises.capture_ms ?? Infinity) < 2 * allowedMs, `captures took ${promises.capture_ms} ms; the budget is ${allowedMs} ms`);
  // The estimate is the sum of the captured promises' weights; its standard
  // error follows from the same weights (sqrt of the sum of w(w-1)).
  const weights = snapshot.tasks.items.map((item) => item.weight ?? 1);
  t.is(weights.length, snapshot.tasks.items_total, 'every captured promise of the site is listed');
  const estimate = live(snapshot, truth.sites.parked, 'promise')?.live ?? 0;
  t.is(estimate, weights.reduce((a, w) => a + w, 0));
  const standardError = Math.sqrt(weights.reduce((a, w) => a + w * (w - 1), 0));
  t.true(standardError < 0.25 * truth.parked, `enough captures to judge: standard error ${Math.round(standardError)} of ${truth.parked}`);
  t.true(Math.abs(estimate - truth.parked) < 4 * standardError, `estimated ${estimate} parked promises, truth ${truth.parked}, standard error ${Math.round(standardError)}`);
  t.is(live(snapshot, truth.sites.settling, 'promise')?.live, 0, 'the settled ones left');
});

/** `rate` requests a second to `client` until `done` settles. */
async function loadUntil(client: Client, rate: number, done: Promise<unknown>): Promise<void> {
  let finished = false;
  void done.finally(() => (finished = true));
  while (!finished) {
    await Promise.all(Array.from({ length: rate / 10 }, () => client.get('/')));
    await new Promise((r) => setTimeout(r, 100));
  }
}

test.serial('a global array that keeps every request: v8-heap-growth names the JavaScript heap, the verdict is live data growing; the bounded twin stays steady', async (t) => {
  const start = async (args: string[]) => {
    const fixture = await startFixture<Ready>(t, 'global_array.mjs', args, { withoutAgent: true, dir: NODE_FIXTURES, interpreter: process.execPath });
    const client = new Client(fixture.truth.port);
    t.teardown(() => client.close());
    return { pid: fixture.pid, client };
  };
  const leaky = await start([]);
  const bounded = await start(['--bounded']);
  // Attached by pid, one at a time (the inspector port): the bridge records the heap from here on.
  await snapshotOf(leaky.pid);
  await snapshotOf(bounded.pid);
  const decided = (s: Snapshot) => !s.pending_checks.some((p) => p.id === 'v8-heap-growth');
  const watched = Promise.all([
    snapshotUntil(leaky.pid, (s) => s.findings.some((f) => f.id === 'v8-heap-growth'), { timeoutMs: 60_000 }),
    snapshotUntil(bounded.pid, decided, { timeoutMs: 60_000 }),
  ]);
  await Promise.all([loadUntil(leaky.client, 200, watched), loadUntil(bounded.client, 200, watched)]);
  const [grown, steady] = await watched;
  const finding = grown.findings.find((f) => f.id === 'v8-heap-growth');
  t.truthy(finding, `findings: ${grown.findings.map((f) => f.id).join(', ')}; pending: ${JSON.stringify(grown.pending_checks)}`);
  t.regex(finding!.summary, /of JavaScript heap added in the last \d+ s and still rising .*, most of it in (old_space|large_object_space)$/);
  t.is(grown.verdict.cause, 'live-data-growing');
  t.true(grown.verdict.because.includes('v8-heap-growth'));
  t.false(grown.findings.some((f) => f.id === 'retention'), 'the JavaScript heap is not the allocator\'s to keep');
  const truth = await leaky.client.json<{ kept: number; record_bytes: number }>('/truth');
  // The rate is at most what the service keeps a second: 8 KiB a request, at 200 a second at most.
  t.true(finding!.value <= 1.3 * 200 * truth.record_bytes, `${finding!.value} B/s`);
  // Where: V8's sampling heap profile names the middleware's function, past Buffer's own frames.
  t.is(grown.heap?.source, 'v8-sampling');
  const named = grown.heap?.stacks.find((x) => x.id === finding!.stacks?.[0]);
  t.regex(named?.site ?? '', /^remember \(global_array\.mjs:\d+\) ← /, JSON.stringify(grown.heap?.stacks.slice(0, 3).map((x) => x.site)));
  t.regex(finding!.message, /\d+% of the growth comes from remember \(global_array\.mjs:\d+\)/);
  const keptBySite = grown.heap!.stacks.filter((x) => x.site.startsWith('remember ')).reduce((sum, x) => sum + x.live_bytes, 0);
  t.true(keptBySite > 0.5 * (grown.heap!.stacks.reduce((sum, x) => sum + x.live_bytes, 0)), `remember holds ${keptBySite}`);

  t.true(decided(steady), JSON.stringify(steady.pending_checks));
  t.deepEqual(steady.findings.filter((f) => f.severity !== 'info').map((f) => f.id), []);
  t.is(steady.verdict.cause, 'steady');
  t.is(schemaErrors(grown), null);
});
