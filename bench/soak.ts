// npm run soak: the long fault cases (docs/reliability.md). An hour (SOAK_MINUTES)
// of `leakscope watch --interval 1s` on a busy target (two threads in a
// malloc/free loop, a thread that starts and joins short threads, forks
// now and then), beside a bare twin doing the same without the agent; every
// five minutes a storm of 1,000 connections at the agent. Sampled every 10 s:
// the target's RSS, the twin's, their difference (all the agent adds), the
// agent's threads and descriptors, and the watch process's own RSS. Writes
// its section of docs/reliability.md.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { agentLibraryPath, PACKAGE_ROOT } from '../src/paths.js';
import { measuredOn, median } from './page.js';

const CLI = resolve(PACKAGE_ROOT, 'bin/leakscope.js');
const TARGET = resolve(PACKAGE_ROOT, 'build/fixtures/attach_target');
const PAGE = resolve(PACKAGE_ROOT, 'docs/reliability.md');
const MINUTES = Number(process.env.SOAK_MINUTES ?? 60);
const SAMPLE_MS = 10_000;
const STORM_EVERY_MS = 5 * 60_000;
const ARGS = ['--loop-threads', '2', '--churn-threads', '100000000', '--fork-every', '2000'];
const MiB = 1024 * 1024;

function status(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function start(withAgent: boolean): Promise<{ child: ChildProcess; pid: number; last: () => Record<string, number> }> {
  return new Promise((resolveStart, reject) => {
    const child = spawn(TARGET, ARGS, { stdio: ['ignore', 'pipe', 'ignore'], env: withAgent ? { ...process.env, LD_PRELOAD: agentLibraryPath() } : process.env });
    let last: Record<string, number> = {};
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('{"ready"')) resolveStart({ child, pid: (JSON.parse(line) as { pid: number }).pid, last: () => last });
      else if (line.startsWith('{"ops"')) last = JSON.parse(line) as Record<string, number>;
    });
    child.once('exit', (code) => reject(new Error(`attach_target exited (${code})`)));
  });
}

function storm(pid: number): Promise<{ served: number; busy: number; refused: number }> {
  const path = `/tmp/leakscope-${process.getuid!()}/${pid}.sock`;
  return Promise.all(
    Array.from({ length: 1000 }, () =>
      new Promise<string>((resolveLine) => {
        const socket = net.createConnection(path);
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (d) => {
          text += d;
          if (text.includes('\n')) {
            socket.destroy();
            resolveLine(text);
          }
        });
        socket.on('error', () => resolveLine('refused'));
        socket.on('close', () => resolveLine(text || 'closed'));
      }),
    ),
  ).then((lines) => ({
    served: lines.filter((l) => /"ok":true/.test(l)).length,
    busy: lines.filter((l) => /busy/.test(l)).length,
    refused: lines.filter((l) => l === 'refused' || l === 'closed').length,
  }));
}

interface Sample {
  readonly minute: number;
  readonly targetRss: number;
  readonly twinRss: number;
  readonly threads: number;
  readonly fds: number;
  readonly watchRss: number;
}

const target = await start(true);
const twin = await start(false);
const out = resolve(PACKAGE_ROOT, 'build/soak-watch.jsonl');
const watch = spawn(process.execPath, [CLI, 'watch', String(target.pid), '--interval', '1s', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
let watchErr = '';
watch.stderr!.on('data', (d) => (watchErr += String(d)));
const samples: Sample[] = [];
const storms: Awaited<ReturnType<typeof storm>>[] = [];
const started = Date.now();
let nextStorm = started + STORM_EVERY_MS;
try {
  while (Date.now() - started < MINUTES * 60_000) {
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
    if (watch.exitCode !== null) throw new Error(`watch ended: ${watchErr}`);
    if (Date.now() >= nextStorm) {
      storms.push(await storm(target.pid));
      nextStorm += STORM_EVERY_MS;
    }
    samples.push({
      minute: (Date.now() - started) / 60_000,
      targetRss: status(target.pid, 'VmRSS') * 1024,
      twinRss: status(twin.pid, 'VmRSS') * 1024,
      threads: readdirSync(`/proc/${target.pid}/task`).length,
      fds: readdirSync(`/proc/${target.pid}/fd`).length,
      watchRss: status(watch.pid!, 'VmRSS') * 1024,
    });
    const s = samples.at(-1)!;
    process.stderr.write(
      `soak ${s.minute.toFixed(1)} min: target ${(s.targetRss / MiB).toFixed(1)} MiB, twin ${(s.twinRss / MiB).toFixed(1)} MiB, ` +
        `threads ${s.threads}, fds ${s.fds}, watch ${(s.watchRss / MiB).toFixed(1)} MiB\n`,
    );
  }
} finally {
  watch.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 1000));
  target.child.kill('SIGKILL');
  twin.child.kill('SIGKILL');
}

const lines = readFileSync(out, 'utf8').trim().split('\n');
const snapshots = lines.filter((l) => l.includes('"schema":"leakscope.snapshot/1"')).length;
const tenth = Math.max(1, Math.floor(samples.length / 10));
const first = samples.slice(0, tenth);
const last = samples.slice(-tenth);
const mib = (v: number) => `${(v / MiB).toFixed(1)} MiB`;
const range = (values: number[]) => `${Math.min(...values)}–${Math.max(...values)}`;
const overhead = (s: readonly Sample[]) => median(s.map((x) => x.targetRss - x.twinRss));
const body = [
  measuredOn('npm run soak'),
  '',
  `${MINUTES} min of \`leakscope watch --interval 1s\` on \`attach_target ${ARGS.join(' ')}\` under the preloaded agent (two threads in a malloc/free loop, a thread starting and joining short threads, a fork with two-thread children and an exec every 2 s), beside a bare twin doing the same; a storm of 1,000 connections every 5 min. Sampled every ${SAMPLE_MS / 1000} s; first and last tenth of the run compared.`,
  '',
  '| | first tenth | last tenth |',
  '|---|---|---|',
  `| target RSS (median) | ${mib(median(first.map((s) => s.targetRss)))} | ${mib(median(last.map((s) => s.targetRss)))} |`,
  `| bare twin RSS (median) | ${mib(median(first.map((s) => s.twinRss)))} | ${mib(median(last.map((s) => s.twinRss)))} |`,
  `| what the agent adds (target − twin, median) | ${mib(overhead(first))} | ${mib(overhead(last))} |`,
  `| target threads | ${range(first.map((s) => s.threads))} | ${range(last.map((s) => s.threads))} |`,
  `| target descriptors | ${range(first.map((s) => s.fds))} | ${range(last.map((s) => s.fds))} |`,
  `| watch process RSS (median) | ${mib(median(first.map((s) => s.watchRss)))} | ${mib(median(last.map((s) => s.watchRss)))} |`,
  '',
  `Snapshots recorded: ${snapshots} of about ${MINUTES * 60}. Short threads started and joined by the target: ${target.last().churned ?? 0}; forks: ${target.last().forks ?? 0}, failed: ${target.last().fork_failures ?? 0}. ` +
    `Storms: ${storms.length}; in each, ${range(storms.map((x) => x.served))} served (the watch holds the agent's one client slot), ` +
    `${range(storms.map((x) => x.busy))} told it is busy, and the rest (${range(storms.map((x) => x.refused))}) refused by the listen backlog. ` +
    `The watch ended ${watchErr.trim() ? `with: ${watchErr.trim()}` : 'cleanly'}.`,
].join('\n');
const page = existsSync(PAGE) ? readFileSync(PAGE, 'utf8') : '';
const begin = '<!-- soak:begin -->';
const end = '<!-- soak:end -->';
writeFileSync(PAGE, page.includes(begin) ? page.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), `${begin}\n${body}\n${end}`) : `${page}\n${begin}\n${body}\n${end}\n`);
process.stderr.write(`${body}\n`);
