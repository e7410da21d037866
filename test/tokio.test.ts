// Real Tokio: the hyper quote service (fixtures/rust/src/service.rs) with
// leakscope's crate — MiMalloc wrapped in Tracked, Tokio's tasks through
// leakscope::layer() (task spans and waker events) or through
// leakscope::runtime_hooks (Tokio's runtime hooks) — attached by pid while
// it serves. The service answers its own truth at /truth.
import { connect } from 'node:http2';
import test, { type ExecutionContext } from 'ava';
import { findingsAt, siteOf } from './helpers/task-sites.js';
import { Client } from './helpers/http.js';
import { RUST_FIXTURES, RUST_HOOKS_FIXTURES, snapshotOf, snapshotUntil, startFixture } from './helpers/process.js';

interface Ready {
  pid: number;
  port: number;
}

interface ServiceTruth {
  quotes: number;
  feeds_started: number;
  feeds_stopped: number;
  lookups: number;
  feed_table_bytes: number;
  sites: { feed: string; connection: string; lookup?: string };
}

const TASK_LINTS = ['idle-forever', 'task-growth', 'lost-waker', 'never-yielded'];
const LOOKUPS = 5;


async function startService(t: ExecutionContext, binary: 'http_leaky' | 'http_healthy', env: NodeJS.ProcessEnv = {}, dir = RUST_FIXTURES) {
  const fixture = await startFixture<Ready>(t, binary, [], {
    withoutAgent: true,
    dir,
    env: { LEAKSCOPE_SAMPLE_INTERVAL: 'exact', ...env },
  });
  const client = new Client(fixture.truth.port);
  t.teardown(() => client.close());
  return { fixture, client };
}

/** Ten quotes every 400 ms until `done` resolves; the service's task count climbs all along. */
async function quoteUntil(client: Client, done: Promise<unknown>): Promise<void> {
  let finished = false;
  void done.finally(() => (finished = true));
  while (!finished) {
    await Promise.all(Array.from({ length: 10 }, () => client.json('/quote')));
    await new Promise((r) => setTimeout(r, 400));
  }
}

/** Quotes until task-growth has decided (or 40 s), then the final truth. */
async function loadAndWatch(client: Client, pid: number, lookups: boolean) {
  if (lookups) for (let i = 0; i < LOOKUPS; i++) await client.get('/lookup');
  const watched = snapshotUntil(pid, (s) => s.findings.some((f) => f.id === 'task-growth') || !s.pending_checks.some((p) => p.id === 'task-growth'), {
    extra: ['--idle-threshold', '1s'],
    timeoutMs: 40_000,
  });
  await quoteUntil(client, watched);
  const during = await watched;
  client.close(); // the keep-alive connections end, and their tasks with them
  const asker = new Client(client.port);
  const truth = await asker.json<ServiceTruth>('/truth');
  asker.close();
  return { during, truth };
}

/**
 * How the service brings its tasks in: leakscope's tracing layer (spans and
 * waker events), or Tokio's runtime hooks (no spans, no wakers), built as a
 * service that takes only the hooks is: without tracing in Tokio or the crate.
 */
const MODES = {
  layer: { env: {}, wakers: true, dir: RUST_FIXTURES },
  hooks: { env: { LEAKSCOPE_FIXTURE_TASKS: 'hooks' }, wakers: false, dir: RUST_HOOKS_FIXTURES },
} as const;

for (const [mode, { env, wakers, dir }] of Object.entries(MODES)) {
  test(`leaky Tokio service (${mode}): every discarded default leaves an idle task at its spawn site, with its memory; ${wakers ? 'the forgotten waker is found' : 'wakers are not judged'}`, async (t) => {
    const { fixture, client } = await startService(t, 'http_leaky', env, dir);
    const { during, truth } = await loadAndWatch(client, fixture.pid, true);
    t.is(during.agent.mode, 'crate');
    t.deepEqual(findingsAt(during, 'task-growth').map(([site]) => site), [truth.sites.feed], `pending: ${JSON.stringify(during.pending_checks)}`);

    // Every feed task has been idle for over a second once the last quote is.
    await new Promise((r) => setTimeout(r, 1500));
    const snapshot = await snapshotOf(fixture.pid, ['--idle-threshold', '1s']);
    t.true(truth.quotes >= 100, `${truth.quotes} quotes`);
    t.is(truth.feeds_started, truth.quotes);
    t.is(truth.feeds_stopped, 0);
    t.like(siteOf(snapshot, truth.sites.feed), {
      kind: 'task',
      live: truth.quotes,
      idle: truth.quotes,
      idle_over_threshold: truth.quotes,
      spawned: truth.quotes,
      completed: 0,
      no_waker: 0,
      allocated_bytes: truth.quotes * truth.feed_table_bytes,
      live_bytes: truth.quotes * truth.feed_table_bytes,
    });
    t.like(siteOf(snapshot, truth.sites.lookup!), { live: LOOKUPS, idle: LOOKUPS, no_waker: wakers ? LOOKUPS : 0, completed: 0 });
    t.deepEqual(snapshot.tasks.wakers_tracked_kinds, wakers ? ['task'] : []);
    t.deepEqual(findingsAt(snapshot, 'idle-forever'), [
      [truth.sites.feed, truth.quotes],
      [truth.sites.lookup!, LOOKUPS],
    ]);
    t.is(snapshot.findings.find((f) => f.id === 'idle-forever')?.severity, 'warn');
    t.regex(snapshot.findings.find((f) => f.id === 'idle-forever')!.summary, new RegExp(`^${truth.quotes} tasks spawned at src/service\\.rs:\\d+ have been idle`));
    t.deepEqual(findingsAt(snapshot, 'lost-waker'), wakers ? [[truth.sites.lookup!, LOOKUPS]] : []);
    // The connections closed: their tasks are done, and the service still serves.
    t.like(siteOf(snapshot, truth.sites.connection), { live: 0 });
    t.truthy(siteOf(snapshot, truth.sites.connection)?.completed);
    const after = new Client(fixture.truth.port);
    t.is((await after.get('/quote')).status, 200);
    after.close();
  });

  test(`healthy twin (${mode}): the same load, every task ends with its request, and no task lint fires`, async (t) => {
    const { fixture, client } = await startService(t, 'http_healthy', env, dir);
    const { during, truth } = await loadAndWatch(client, fixture.pid, false);
    t.deepEqual(findingsAt(during, 'task-growth'), []);
    await new Promise((r) => setTimeout(r, 1500));
    const snapshot = await snapshotOf(fixture.pid, ['--idle-threshold', '1s']);
    t.true(truth.quotes >= 100, `${truth.quotes} quotes`);
    t.is(truth.feeds_stopped, truth.quotes);
    t.like(siteOf(snapshot, truth.sites.feed), { live: 0, spawned: truth.quotes, completed: truth.quotes, live_bytes: 0 });
    t.is(snapshot.tasks.live, 0);
    t.deepEqual(
      snapshot.findings.filter((f) => TASK_LINTS.includes(f.id)),
      [],
    );
  });
}

/** Reads console-subscriber's gRPC update stream until an update names `atLeast` tasks spawned in service.rs. */
function consoleSees(port: number, atLeast: number, timeoutMs = 10_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/rs.tokio.console.instrument.Instrument/WatchUpdates',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    stream.end(Buffer.from([0, 0, 0, 0, 0])); // one empty InstrumentRequest
    let pending = Buffer.alloc(0);
    let most = 0;
    const finish = (error?: Error) => {
      clearTimeout(timer);
      session.destroy();
      if (error) reject(error);
      else resolve(most);
    };
    const timer = setTimeout(() => finish(new Error(`console-subscriber named at most ${most} service.rs tasks`)), timeoutMs);
    stream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        const length = pending.readUInt32BE(1);
        // Each task in an update carries its spawn location's file.
        const named = pending.subarray(5, 5 + length).toString('latin1').split('src/service.rs').length - 1;
        pending = pending.subarray(5 + length);
        most = Math.max(most, named);
        if (most >= atLeast) return finish();
      }
    });
    stream.on('error', finish);
  });
}

test('beside console-subscriber: both layers see the same tasks', async (t) => {
  const consolePort = 16_000 + (process.pid % 1000);
  const { fixture, client } = await startService(t, 'http_leaky', {
    LEAKSCOPE_FIXTURE_CONSOLE: '1',
    TOKIO_CONSOLE_BIND: `127.0.0.1:${consolePort}`,
  });
  for (let i = 0; i < LOOKUPS; i++) await client.get('/lookup');
  await Promise.all(Array.from({ length: 40 }, () => client.json('/quote')));
  const truth = await client.json<ServiceTruth>('/truth');
  t.true((await consoleSees(consolePort, truth.quotes + LOOKUPS)) >= truth.quotes + LOOKUPS);
  const snapshot = await snapshotUntil(fixture.pid, (s) => (siteOf(s, truth.sites.lookup!)?.idle_over_threshold ?? 0) === LOOKUPS, {
    extra: ['--idle-threshold', '1s'],
  });
  t.like(siteOf(snapshot, truth.sites.feed), { live: truth.quotes, spawned: truth.quotes, completed: 0 });
  t.deepEqual(findingsAt(snapshot, 'lost-waker'), [[truth.sites.lookup!, LOOKUPS]]);
});
