// Tasks reported through the ABI by the event-loop fixture: the lints fire on
// the leaking site and stay quiet on the healthy ones; counts and per-task
// memory equal the fixture's own truth (exact sampling), or come within 10%
// of it under the default's sampled counts.
import test from 'ava';
import { findingsAt, siteOf } from './helpers/task-sites.js';
import type { EventLoopTruth } from './helpers/event-loop.js';
import { snapshotOf, snapshotUntil, startFixture } from './helpers/process.js';



// Under leakscope run's default the agent counts samples alone, so the bytes
// charged to a task are the weights of the samples taken during its polls:
// over 100 MB at a site (12,000 requests of 9,000 bytes, about 1,650
// samples) within 10% of the truth; task counts stay exact.
test("sampled counts (the default): a site's allocated bytes within 10% over 100 MB, its task counts exact", async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '400', '--requests', '30', '--interval-ms', '1']);
  const truth = fixture.truth;
  t.true(truth.request_allocated_bytes >= 100e6);
  const snapshot = await snapshotOf(fixture.pid);
  t.is(snapshot.agent.counts, 'sampled');
  const request = siteOf(snapshot, truth.sites.request)!;
  t.like(request, { live: 0, spawned: truth.requests_completed, completed: truth.requests_completed, polls: truth.requests_completed * 3 });
  const off = Math.abs(request.allocated_bytes - truth.request_allocated_bytes) / truth.request_allocated_bytes;
  t.true(off <= 0.1, `request site: ${request.allocated_bytes} allocated, truth ${truth.request_allocated_bytes}`);
  t.like(siteOf(snapshot, truth.sites.leak), { live: truth.leaked_tasks, spawned: truth.leaked_tasks, completed: 0 });
});

test('exact counts and per-task memory at every site; each lint on its own site only', async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '12', '--interval-ms', '50'], {
    sampleInterval: 'exact',
  });
  const truth = fixture.truth;
  t.true(truth.agent, 'the weak ABI resolved to the agent');
  // The last leaked task parked over a second before the fixture said ready.
  const snapshot = await snapshotOf(fixture.pid, ['--idle-threshold', '1s']);
  const leak = siteOf(snapshot, truth.sites.leak)!;
  t.like(leak, {
    kind: 'task',
    live: truth.leaked_tasks,
    idle: truth.leaked_tasks,
    idle_over_threshold: truth.leaked_tasks,
    no_waker: 0,
    spawned: truth.leaked_tasks,
    completed: 0,
    allocated_bytes: truth.leak_live_bytes,
    live_bytes: truth.leak_live_bytes,
  });
  t.like(siteOf(snapshot, truth.sites.request), {
    live: 0,
    spawned: truth.requests_completed,
    completed: truth.requests_completed,
    polls: truth.requests_completed * 3,
    allocated_bytes: truth.request_allocated_bytes,
    live_bytes: 0,
  });
  // A handshake runs nested inside each connection's first poll: its bytes
  // are its own, and not the connection's.
  t.like(siteOf(snapshot, truth.sites.handshake), {
    live: 0,
    spawned: truth.connections,
    completed: truth.connections,
    allocated_bytes: truth.handshake_allocated_bytes,
  });
  t.is(siteOf(snapshot, truth.sites.connection)?.allocated_bytes, truth.connection_allocated_bytes);
  t.like(siteOf(snapshot, truth.sites.heartbeat), { live: 0, spawned: truth.connections, completed: truth.connections, live_bytes: 0 });
  t.like(siteOf(snapshot, truth.sites.lost), { live: 1, idle: 1, no_waker: truth.lost_tasks });
  const blocker = siteOf(snapshot, truth.sites.blocker)!;
  t.true(Math.abs(blocker.longest_poll_ms - truth.blocker_poll_ms) <= 1, `${blocker.longest_poll_ms} vs ${truth.blocker_poll_ms}`);
  t.is(snapshot.tasks.live, truth.leaked_tasks + 1);
  t.deepEqual(snapshot.tasks.wakers_tracked_kinds, ['task']);

  t.deepEqual(findingsAt(snapshot, 'idle-forever'), [
    [truth.sites.leak, truth.leaked_tasks],
    [truth.sites.lost, 1],
  ]);
  t.is(snapshot.findings.find((f) => f.id === 'idle-forever')?.severity, 'warn');
  t.deepEqual(findingsAt(snapshot, 'lost-waker'), [[truth.sites.lost, 1]]);
  t.deepEqual(findingsAt(snapshot, 'never-yielded'), [[truth.sites.blocker, blocker.longest_poll_ms]]);
  t.is(snapshot.pending_checks.find((p) => p.id === 'lost-waker'), undefined);
});

test('the task list: paged, filtered by site, sorted, with wakers and memory per task', async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '12', '--interval-ms', '50'], {
    sampleInterval: 'exact',
  });
  const truth = fixture.truth;
  const perTask = truth.leak_live_bytes / truth.leaked_tasks;
  const page = await snapshotOf(fixture.pid, ['--tasks-site', truth.sites.leak, '--tasks', '5', '--tasks-offset', '5', '--tasks-sort', 'age']);
  t.is(page.tasks.items_total, truth.leaked_tasks);
  t.is(page.tasks.items_offset, 5);
  t.is(page.tasks.items.length, 5);
  for (const item of page.tasks.items)
    t.like(item, { site: truth.sites.leak, name: 'heartbeat', state: 'idle', wakers: 1, polls: 1, allocated_bytes: perTask, live_bytes: perTask });
  const ages = page.tasks.items.map((i) => i.created_ms);
  t.deepEqual([...ages].sort((a, b) => a - b), ages, 'oldest first');
  // The second page of five is the second half of the first ten, and every page ends where the order says.
  const first10 = await snapshotOf(fixture.pid, ['--tasks-site', truth.sites.leak, '--tasks', '10', '--tasks-sort', 'age']);
  t.deepEqual(
    page.tasks.items.map((i) => i.id),
    first10.tasks.items.slice(5).map((i) => i.id),
  );
  const byId = await snapshotOf(fixture.pid, ['--tasks-site', truth.sites.leak, '--tasks', '3', '--tasks-offset', String(truth.leaked_tasks - 2), '--tasks-sort', 'id']);
  t.is(byId.tasks.items.length, 2, 'the last page holds what is left');
  const allIds = (await snapshotOf(fixture.pid, ['--tasks-site', truth.sites.leak, '--tasks', String(truth.leaked_tasks), '--tasks-sort', 'id'])).tasks.items.map((i) => i.id);
  t.deepEqual(
    byId.tasks.items.map((i) => i.id),
    allIds.slice(-2),
  );
  const all = await snapshotOf(fixture.pid, ['--tasks-state', 'all', '--tasks-filter', 'REQUEST', '--tasks', '1000']);
  t.true(all.tasks.items.every((i) => i.name === 'request' && i.state === 'completed'));
  t.is(all.tasks.items_total, truth.requests_completed, 'completed tasks are retained for a while');
});

test('completed tasks: the newest LEAKSCOPE_TASK_RETAIN_MAX stay listed, older ones and those past LEAKSCOPE_TASK_RETAIN_MS are forgotten, and their records serve new tasks', async (t) => {
  // 150 connections of 4 requests: 8 tasks each, more than the 1,024 records
  // the agent may hold, over 4 s of traffic.
  const [kept, expiring] = await Promise.all([
    startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '150', '--interval-ms', '20', '--requests', '4'], {
      env: { LEAKSCOPE_TASK_RETAIN_MAX: '25', LEAKSCOPE_MAX_TASKS: '1024' },
    }),
    startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '12', '--interval-ms', '50'], { env: { LEAKSCOPE_TASK_RETAIN_MS: '1000' } }),
  ]);
  const readyAt = Date.now();
  const listed = await snapshotUntil(kept.pid, (s) => s.tasks.by_state.completed === 25, {
    extra: ['--tasks-state', 'completed', '--tasks', '100'],
    timeoutMs: 10_000,
  });
  const sinceReady = Date.now() - readyAt;
  t.true(listed.tasks.spawned > 1024, `${listed.tasks.spawned} tasks spawned`);
  t.is(listed.tasks.dropped, 0, 'every spawn found a record: forgotten ones were taken again');
  t.is(listed.tasks.live, kept.truth.leaked_tasks + 1);
  t.is(listed.tasks.completed, listed.tasks.spawned - listed.tasks.live);
  t.is(listed.tasks.by_state.completed, 25);
  t.is(listed.tasks.items.length, 25);
  // The newest: the traffic's last half second, not its first seconds.
  const oldest = Math.max(...listed.tasks.items.map((i) => i.completed_ms_ago ?? Infinity));
  t.true(oldest <= sinceReady + 600, `the oldest kept completed ${oldest} ms ago, ${sinceReady} ms after the traffic ended`);

  const expired = await snapshotUntil(expiring.pid, (s) => s.tasks.by_state.completed === 0, { timeoutMs: 10_000 });
  t.is(expired.tasks.by_state.completed, 0);
  t.true(expired.tasks.completed > 0);
  t.is(expired.tasks.live, expiring.truth.leaked_tasks + 1);
});

test('task-growth fires on the site that keeps leaking and on no bounded one', async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '4', '--interval-ms', '400', '--forever']);
  const truth = fixture.truth;
  const snapshot = await snapshotUntil(fixture.pid, (s) => s.findings.some((f) => f.id === 'task-growth'), { timeoutMs: 40_000 });
  const growth = snapshot.findings.filter((f) => f.id === 'task-growth');
  t.deepEqual(
    growth.map((f) => f.subject.label),
    [truth.sites.leak],
    `pending: ${JSON.stringify(snapshot.pending_checks)}`,
  );
  const leak = siteOf(snapshot, truth.sites.leak)!;
  t.is(leak.live_history?.length, snapshot.history.length);
  t.true(growth[0]!.value >= 10);
  // The healthy sites were busy all along and are bounded.
  for (const healthy of [truth.sites.heartbeat, truth.sites.request, truth.sites.connection])
    t.true((siteOf(snapshot, healthy)?.spawned ?? 0) > 0, healthy);
});

test('without the agent the ABI is absent and the program runs as before', async (t) => {
  const fixture = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '3', '--interval-ms', '20'], { withoutAgent: true });
  t.false(fixture.truth.agent);
  t.is(fixture.truth.leaked_tasks, 3);
  t.true(fixture.alive());
});
