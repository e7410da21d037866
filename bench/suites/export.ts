// The export suite: one `leakscope export` process over many agents
// (docs/export.md). 200 small programs run with the agent preloaded; the
// exporter takes a snapshot of each every 15 s and serves /metrics, scraped
// every 15 s as Prometheus would. Reported: the exporter's CPU (share of
// one core, and per snapshot), its RSS at the start and the end of the run
// (flat, or not), the scrape's time and size, and how many targets were
// answering — beside the CPU the 200 agents spent themselves in the same run.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { agentLibraryPath, PACKAGE_ROOT } from '../../src/paths.js';
import { cpuMs, measuredOn, median, writeSection } from '../page.js';

const CLI = resolve(PACKAGE_ROOT, 'bin/leakscope.js');
const TARGET = resolve(PACKAGE_ROOT, 'build/fixtures/growing_leak');
const TARGETS = Number(process.env.BENCH_EXPORT_TARGETS ?? 200);
const INTERVAL_MS = Number(process.env.BENCH_EXPORT_INTERVAL_MS ?? 15_000);
const DURATION_MS = Number(process.env.BENCH_EXPORT_DURATION_MS ?? 300_000);

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

function startTarget(): Promise<ChildProcess & { pid: number }> {
  return new Promise((resolveStart, reject) => {
    const child = spawn(TARGET, ['--steady'], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, LD_PRELOAD: agentLibraryPath() } });
    const timer = setTimeout(() => reject(new Error('a target did not start')), 20_000);
    createInterface({ input: child.stdout! }).once('line', () => {
      clearTimeout(timer);
      resolveStart(child as ChildProcess & { pid: number });
    });
  });
}

const MiB = 1024 * 1024;

export async function runExportSuite(): Promise<void> {
  const targets: (ChildProcess & { pid: number })[] = [];
  let exporter: ChildProcess | null = null;
  try {
    for (let i = 0; i < TARGETS; i++) targets.push(await startTarget());
    process.stderr.write(`export: ${TARGETS} targets started\n`);
    const port = await freePort();
    exporter = spawn(process.execPath, [CLI, 'export', ...targets.map((t) => String(t.pid)), '--prometheus', `127.0.0.1:${port}`, '--interval', `${INTERVAL_MS}ms`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    exporter.stderr!.on('data', (chunk) => (log += String(chunk)));
    const exporterPid = exporter.pid!;
    const scrape = async () => {
      const started = performance.now();
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return { ms: performance.now() - started, bytes: text.length, series: text.split('\n').filter((l) => l && !l.startsWith('#')).length, up: (text.match(/^leakscope_target_up\{[^}]*\} 1$/gm) ?? []).length };
    };
    const deadline = Date.now() + 60_000;
    while (!log.includes('serving http://')) {
      if (exporter.exitCode !== null || Date.now() > deadline) throw new Error(`the exporter did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // One interval for every target's first snapshot; then measure.
    await new Promise((r) => setTimeout(r, INTERVAL_MS + 2000));
    const targetsCpu0 = targets.reduce((sum, t) => sum + cpuMs(t.pid), 0);
    const cpu0 = cpuMs(exporterPid);
    const rss0 = rssBytes(exporterPid);
    const started = Date.now();
    const scrapes: Awaited<ReturnType<typeof scrape>>[] = [];
    const rss: number[] = [];
    while (Date.now() - started < DURATION_MS) {
      scrapes.push(await scrape());
      rss.push(rssBytes(exporterPid));
      process.stderr.write(`export: ${Math.round((Date.now() - started) / 1000)} s, ${scrapes.at(-1)!.up} up, RSS ${(rss.at(-1)! / MiB).toFixed(1)} MiB\n`);
      await new Promise((r) => setTimeout(r, INTERVAL_MS));
    }
    const wallMs = Date.now() - started;
    const cpu = cpuMs(exporterPid) - cpu0;
    const targetsCpu = targets.reduce((sum, t) => sum + cpuMs(t.pid), 0) - targetsCpu0;
    const snapshots = (TARGETS * wallMs) / INTERVAL_MS;
    const half = Math.floor(rss.length / 2);
    const rows = [
      `| targets answering (every scrape) | ${Math.min(...scrapes.map((s) => s.up))} of ${TARGETS} |`,
      `| exporter CPU | ${((100 * cpu) / wallMs).toFixed(1)} % of one core; ${(cpu / snapshots).toFixed(2)} ms per snapshot taken and judged |`,
      `| the ${TARGETS} targets' own CPU in the same time (their work and their agents') | ${((100 * targetsCpu) / wallMs).toFixed(1)} % of one core |`,
      `| exporter RSS | ${(rss0 / MiB).toFixed(1)} MiB after the first interval; median ${(median(rss.slice(0, half)) / MiB).toFixed(1)} MiB in the first half of the run, ${(median(rss.slice(half)) / MiB).toFixed(1)} MiB in the second; ${(Math.max(...rss) / MiB).toFixed(1)} MiB at most |`,
      `| scrape of /metrics | median ${median(scrapes.map((s) => s.ms)).toFixed(0)} ms, at most ${Math.max(...scrapes.map((s) => s.ms)).toFixed(0)} ms; ${(median(scrapes.map((s) => s.bytes)) / 1024).toFixed(0)} KiB, ${median(scrapes.map((s) => s.series))} series |`,
    ];
    writeSection(
      'export',
      [
        measuredOn('npm run bench -- export'),
        '',
        `Load: ${TARGETS} processes (\`build/fixtures/growing_leak --steady\`: a hundred small mallocs and frees every 100 ms) run with the agent preloaded; one \`leakscope export\` takes a snapshot of each every ${INTERVAL_MS / 1000} s (their first spread over the interval) and serves /metrics, fetched every ${INTERVAL_MS / 1000} s for ${Math.round(wallMs / 60_000)} min after a first interval. CPU from /proc/PID/stat over the same window.`,
        '',
        '| | |',
        '|---|---|',
        ...rows,
      ].join('\n'),
    );
    process.stderr.write(`${rows.join('\n')}\n`);
  } finally {
    exporter?.kill('SIGKILL');
    for (const target of targets) target.kill('SIGKILL');
  }
}
