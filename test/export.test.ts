// leakscope export end to end: a real Prometheus server scrapes the
// exporter over fixtures with known truth (a task leak, a sleeping owner
// under mimalloc, a healthy program), and PromQL through its HTTP API gives
// back the verdicts and the amounts. Targets that exit or refuse do not stop
// it serving the others.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { splitByTarget, fleetMetrics } from '../src/export/producer.js';
import { parseListen, parseOtlpUrl } from '../src/cli/commands/export.js';
import { instanceId, serviceNameOf } from '../src/export/fleet.js';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { EventLoopTruth } from './helpers/event-loop.js';
import type { OwnerTruth } from './helpers/owner.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { CLI, MiB, oneLineError, runCli, safeKill, startFixture } from './helpers/process.js';
import { freePort, Prometheus, type PromSample } from './helpers/prometheus.js';

const RULES = resolve(PACKAGE_ROOT, 'docs/prometheus/leakscope-rules.yml');
const DASHBOARD = resolve(PACKAGE_ROOT, 'docs/grafana/leakscope.json');

interface Exporter {
  readonly child: ChildProcess;
  readonly port: number;
  stderr(): string;
}

async function startExporter(t: ExecutionContext, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Exporter> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'export', ...args, '--prometheus', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += String(chunk)));
  t.teardown(() => void child.kill('SIGKILL'));
  const deadline = Date.now() + 30_000;
  while (!stderr.includes('serving http://')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the exporter did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port, stderr: () => stderr };
}

const one = (samples: { value: number }[]): number | null => (samples.length === 1 ? samples[0]!.value : null);

test('Prometheus scrapes the exporter: verdicts and amounts per process, by PromQL', async (t) => {
  const leak = await startFixture<EventLoopTruth>(t, 'event_loop', ['--connections', '12', '--interval-ms', '50'], { sampleInterval: 'exact' });
  const owner = await startFixture<OwnerTruth>(t, 'sleeping_owner', ['128'], { allocator: 'mimalloc', counts: 'exact' });
  const healthy = await startFixture<{ pid: number }>(t, 'growing_leak', ['--steady']);
  const exporter = await startExporter(t, [String(leak.pid), String(owner.pid), String(healthy.pid), '--interval', '1s', '--idle-threshold', '2s', '--service-name', 'shop']);
  const prometheus = await Prometheus.start(t, [`127.0.0.1:${exporter.port}`], [RULES]);

  const verdict = (pid: number, cause: string) => `leakscope_verdict{process_pid="${pid}",leakscope_verdict_cause="${cause}"}`;
  await prometheus.until(verdict(leak.pid, 'tasks-leaking'), (s) => one(s) === 1);
  await prometheus.until(verdict(owner.pid, 'allocator-retention'), (s) => one(s) === 1);
  // The healthy one is steady, and no check found anything on it.
  t.is(one(await prometheus.query(verdict(healthy.pid, 'steady'))), 1);
  t.deepEqual(await prometheus.query(`leakscope_findings{process_pid="${healthy.pid}"} > 0`), []);

  // The leaked tasks, on their site.
  const sites = await prometheus.query(`leakscope_tasks_idle{process_pid="${leak.pid}"} > 0`);
  t.deepEqual(
    sites.map((s) => [s.metric.leakscope_task_site, s.value]),
    [[leak.truth.sites.leak, leak.truth.leaked_tasks], [leak.truth.sites.lost, 1]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
  );
  t.is(one(await prometheus.query(`leakscope_findings{process_pid="${leak.pid}",leakscope_finding_id="idle-forever",leakscope_finding_severity="warn"}`)), 1);

  // The sleeping owner's bytes, measured, against what the fixture freed.
  const retained = one(await prometheus.query(`leakscope_memory_retained{process_pid="${owner.pid}",leakscope_retention_cause="sleeping-owner"}`))!;
  t.true(Math.abs(retained - owner.truth.remote_freed_bytes) <= 0.1 * owner.truth.remote_freed_bytes, `${retained} vs ${owner.truth.remote_freed_bytes}`);
  const unreclaimed = await prometheus.query(`leakscope_thread_unreclaimed{process_pid="${owner.pid}"}`);
  t.is(unreclaimed[0]?.metric.thread_id, String(owner.truth.owner_tid));

  // Every series names its process: service.name as given, one instance id per process.
  const up = await prometheus.query('leakscope_target_up');
  t.deepEqual(up.map((s) => Number(s.metric.process_pid)).sort(), [leak.pid, owner.pid, healthy.pid].sort());
  t.true(up.every((s) => s.value === 1 && s.metric.service_name === 'shop' && s.metric.leakscope_agent_mode === 'preload'));
  t.is(new Set(up.map((s) => s.metric.service_instance_id)).size, 3);
  const rss = one(await prometheus.query(`process_memory_usage{process_pid="${owner.pid}"}`))!;
  t.true(rss > 128 * MiB, `RSS ${rss}`);
  const allocated = one(await prometheus.query(`leakscope_heap_allocated_total{process_pid="${owner.pid}"}`))!;
  t.true(allocated >= 128 * MiB);

  t.true((await prometheus.targets()).every((target) => target.health === 'up'), JSON.stringify(await prometheus.targets()));

  // The shipped rules on this data: the retention share recorded, the alerts pending (they need minutes to fire).
  const ratio = await prometheus.until(`leakscope:memory_retained:ratio{process_pid="${owner.pid}"}`, (s) => s.length === 1);
  const ownerRss = one(await prometheus.query(`process_memory_usage{process_pid="${owner.pid}"}`))!;
  const ownerRetained = one(await prometheus.query(`sum(leakscope_memory_retained{process_pid="${owner.pid}"})`))!;
  t.true(Math.abs(ratio[0]!.value - ownerRetained / ownerRss) < 0.05, `${ratio[0]!.value} vs ${ownerRetained}/${ownerRss}`);
  await prometheus.until('ALERTS{alertstate="pending"}', (s) => s.length >= 2, 15_000);
  const pending = (await prometheus.alerts()).map((a) => `${a.labels.alertname} ${a.labels.process_pid} ${a.state}`).sort();
  t.true(pending.includes(`LeakscopeTaskLeak ${leak.pid} pending`), pending.join('; '));
  t.is(pending.includes(`LeakscopeAllocatorRetention ${owner.pid} pending`), ratio[0]!.value > 0.5, `${ratio[0]!.value}: ${pending.join('; ')}`);
  t.false(pending.some((a) => a.includes(String(healthy.pid))), pending.join('; '));

  // Every query of the shipped dashboard is valid PromQL here; the main panels have data for each process.
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  const results = new Map<string, PromSample[]>();
  for (const panel of dashboard.panels)
    for (const target of panel.targets) results.set(panel.title, await prometheus.query(target.expr.replaceAll('$service', '.*')));
  const pidsIn = (title: string) => [...new Set(results.get(title)!.map((s) => Number(s.metric.process_pid)))].sort();
  const all = [leak.pid, owner.pid, healthy.pid].sort();
  t.deepEqual(pidsIn('Verdict per process'), all);
  t.deepEqual(pidsIn('Live heap vs RSS vs retained'), all);
  t.deepEqual(pidsIn('Retained by cause'), [owner.pid]);
  t.deepEqual(pidsIn('Idle tasks by site'), [leak.pid]);
  t.deepEqual(pidsIn('Unreclaimed bytes by owner thread'), [owner.pid]);

  // A target that exits: gone from the next scrape; the exporter says so and serves the others.
  safeKill(healthy.pid, 'SIGKILL');
  await prometheus.until(`leakscope_target_up{process_pid="${healthy.pid}"}`, (s) => s.length === 0);
  t.regex(exporter.stderr(), new RegExp(`pid ${healthy.pid}: exited; 2 left`));
  t.is((await prometheus.query('leakscope_target_up == 1')).length, 2);
  t.is(exporter.child.exitCode, null);
});

test('a target another client holds (busy): up 0 and a failure counted, the others served; it comes back when let go', async (t) => {
  const held = await startFixture<{ pid: number }>(t, 'growing_leak', ['--steady']);
  const free = await startFixture<{ pid: number }>(t, 'growing_leak', ['--steady']);
  const socket = createConnection(`/tmp/leakscope-${process.getuid!()}/${held.pid}.sock`);
  await new Promise((r) => socket.once('data', r)); // admitted: the agent is now busy for anyone else
  t.teardown(() => socket.destroy());
  const exporter = await startExporter(t, [String(held.pid), String(free.pid), '--interval', '1s']);
  const prometheus = await Prometheus.start(t, [`127.0.0.1:${exporter.port}`]);
  await prometheus.until(`leakscope_target_failures_total{process_pid="${held.pid}",leakscope_target_problem="busy"}`, (s) => (one(s) ?? 0) >= 1);
  t.is(one(await prometheus.query(`leakscope_target_up{process_pid="${held.pid}"}`)), 0);
  t.is(one(await prometheus.query(`leakscope_target_up{process_pid="${free.pid}"}`)), 1);
  t.is(one(await prometheus.query(`leakscope_heap_live{process_pid="${held.pid}"}`)), null, 'nothing stale is published for it');
  t.regex(exporter.stderr(), new RegExp(`pid ${held.pid}: not answering \\(busy: another leakscope client`));
  socket.destroy();
  await prometheus.until(`leakscope_target_up{process_pid="${held.pid}"}`, (s) => one(s) === 1, 30_000);
  t.regex(exporter.stderr(), new RegExp(`pid ${held.pid}: answering again`));
});

test('--all finds every process with an agent, and new ones as they start', async (t) => {
  // A socket directory of its own: --all holds every agent it finds, and must not take those of the tests running beside it.
  const dir = mkdtempSync(join(tmpdir(), 'leakscope-all-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = { LEAKSCOPE_SOCKET_DIR: dir };
  const first = await startFixture<{ pid: number }>(t, 'growing_leak', ['--steady'], { env });
  const exporter = await startExporter(t, ['--all', '--interval', '500ms'], env);
  const scrape = async () => (await fetch(`http://127.0.0.1:${exporter.port}/metrics`)).text();
  const pidsOnUp = async () => [...(await scrape()).matchAll(/^leakscope_target_up\{[^}]*process_pid="(\d+)"/gm)].map((m) => Number(m[1]));
  const deadline = Date.now() + 20_000;
  while (!(await pidsOnUp()).includes(first.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(await pidsOnUp(), [first.pid]);
  const second = await startFixture<{ pid: number }>(t, 'growing_leak', ['--steady'], { env });
  while (!(await pidsOnUp()).includes(second.pid) && Date.now() < deadline + 10_000) await new Promise((r) => setTimeout(r, 200));
  t.deepEqual((await pidsOnUp()).sort(), [first.pid, second.pid].sort());
  t.regex(exporter.stderr(), new RegExp(`pid ${second.pid}: watching`));
});

test('bad input: no pids and no --all, nowhere to send, a bad address, a port taken, a dead pid', async (t) => {
  oneLineError(t, await runCli(['export', '--prometheus', '127.0.0.1:1']), /name the pids to export, or --all/);
  oneLineError(t, await runCli(['export', String(process.pid)]), /say where to: --prometheus HOST:PORT, --otlp URL, or both/);
  oneLineError(t, await runCli(['export', '--all', '--prometheus', 'nine']), /--prometheus expects HOST:PORT/);
  oneLineError(t, await runCli(['export', '--all', '--otlp', 'ftp://x']), /--otlp expects an http or https URL/);
  const empty = mkdtempSync(join(tmpdir(), 'leakscope-all-'));
  t.teardown(() => rmSync(empty, { recursive: true, force: true }));
  const taken = await startExporter(t, ['--all', '--interval', '1s'], { LEAKSCOPE_SOCKET_DIR: empty });
  oneLineError(t, await runCli(['export', '--all', '--prometheus', `127.0.0.1:${taken.port}`], { env: { LEAKSCOPE_SOCKET_DIR: empty } }), /cannot serve \/metrics on 127\.0\.0\.1:\d+: EADDRINUSE/);
  // A pid that is not there is said, and the exporter serves on (nothing).
  const exporter = await startExporter(t, ['4194301', '--interval', '1s']);
  t.regex(exporter.stderr(), /pid 4194301: no such process; watching the others/);
  t.is(exporter.child.exitCode, null);
});

test('the shipped rules pass their own tests (promtool)', async (t) => {
  const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
  t.is(check.status, 0, check.stdout + check.stderr);
  t.regex(check.stdout, /SUCCESS: 8 rules found/);
  const tests = spawnSync('promtool', ['test', 'rules', 'leakscope-rules.test.yml'], { cwd: resolve(PACKAGE_ROOT, 'docs/prometheus'), encoding: 'utf8' });
  t.is(tests.status, 0, tests.stdout + tests.stderr);
});

test('OTLP/HTTP: each process pushed as its own resource, with the SDK\'s exporter', async (t) => {
  const fixture = await startFixture<{ pid: number }>(t, 'growing_leak', ['--steady']);
  const bodies: { path: string; type: string; body: string }[] = [];
  const receiver = createHttpServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += String(chunk)));
    request.on('end', () => {
      bodies.push({ path: request.url ?? '', type: request.headers['content-type'] ?? '', body });
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  t.teardown(() => void receiver.close());
  const port = (receiver.address() as { port: number }).port;
  const child = spawn(process.execPath, [CLI, 'export', String(fixture.pid), '--otlp', `http://127.0.0.1:${port}`, '--interval', '1s', '--service-name', 'shop'], { stdio: 'ignore' });
  t.teardown(() => void child.kill('SIGKILL'));
  const deadline = Date.now() + 20_000;
  const withPoints = () => bodies.find((b) => b.body.includes('"leakscope.heap.live"'));
  while (!withPoints() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const request = withPoints();
  t.truthy(request, `requests: ${bodies.map((b) => b.body.slice(0, 200)).join('\n')}`);
  t.is(request!.path, '/v1/metrics');
  t.regex(request!.type, /application\/json/);
  type Value = { stringValue?: string; intValue?: string | number };
  const payload = JSON.parse(request!.body) as {
    resourceMetrics: { resource: { attributes: { key: string; value: Value }[] }; scopeMetrics: { metrics: { name: string; gauge?: { dataPoints: { asInt?: string | number; attributes?: unknown[] }[] }; sum?: { dataPoints: { asInt?: string | number; attributes?: unknown[] }[] } }[] }[] }[];
  };
  t.is(payload.resourceMetrics.length, 1);
  const resource = Object.fromEntries(payload.resourceMetrics[0]!.resource.attributes.map((a) => [a.key, a.value.stringValue ?? Number(a.value.intValue)]));
  t.like(resource, { 'service.name': 'shop', 'process.pid': fixture.pid });
  t.regex(String(resource['service.instance.id']), /^[0-9a-f-]{36}$/);
  const metrics = payload.resourceMetrics[0]!.scopeMetrics[0]!.metrics;
  const rss = metrics.find((m) => m.name === 'process.memory.usage')!;
  const point = (rss.sum ?? rss.gauge)!.dataPoints[0]!;
  t.true(Number(point.asInt) > 1 * MiB);
  t.deepEqual(point.attributes ?? [], [], 'the identity is on the resource, not on the points');
});

test('addresses and URLs as a person writes them', (t) => {
  t.deepEqual(parseListen('0.0.0.0:9464'), { host: '0.0.0.0', port: 9464 });
  t.deepEqual(parseListen('[::1]:9464'), { host: '::1', port: 9464 });
  t.deepEqual(parseListen('9464'), { host: '127.0.0.1', port: 9464 });
  t.is(parseOtlpUrl('http://collector:4318'), 'http://collector:4318/v1/metrics');
  t.is(parseOtlpUrl('https://otlp.example/custom/path'), 'https://otlp.example/custom/path');
  t.deepEqual(
    ['/usr/bin/redis-server *:6379', 'node --enable-source-maps dist/server.mjs --port 80', 'python3 -m http.server', 'node', '/opt/app/bin/api'].map(serviceNameOf),
    ['redis-server', 'server', 'http.server', 'node', 'api'],
  );
  t.is(instanceId('vm', 42, '2026-12-07T10:00:00.000Z'), instanceId('vm', 42, '2026-12-07T10:00:00.000Z'));
  t.not(instanceId('vm', 42, '2026-12-07T10:00:00.000Z'), instanceId('vm', 42, '2026-12-07T10:00:01.000Z'));
  t.regex(instanceId('vm', 42, 'x'), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('OTLP: each process is its own resource, its identity taken off the points', (t) => {
  const target = (pid: number) => ({
    pid,
    identity: { 'service.name': 'shop', 'service.instance.id': `id-${pid}`, 'host.name': 'vm', 'process.pid': pid },
    snapshot: null,
    problem: 'busy' as const,
    failures: new Map([['busy' as const, 2]]),
    startedAt: new Date(1_000_000),
  });
  const metrics = fleetMetrics([target(10), target(11)], 2_000_000);
  const batches = splitByTarget({ resource: resourceFromAttributes({}), scopeMetrics: [{ scope: { name: 'leakscope' }, metrics }] });
  t.is(batches.length, 2);
  t.deepEqual(batches.map((b) => b.resource.attributes['process.pid']), [10, 11]);
  const failures = batches[0]!.scopeMetrics[0]!.metrics.find((m) => m.descriptor.name === 'leakscope.target.failures')!;
  t.deepEqual(
    failures.dataPoints.map((p) => [p.attributes, p.value, p.startTime]),
    [
      [{ 'leakscope.target.problem': 'busy' }, 2, [1000, 0]],
      [{ 'leakscope.target.problem': 'permission' }, 0, [1000, 0]],
      [{ 'leakscope.target.problem': 'unreachable' }, 0, [1000, 0]],
    ],
  );
});
