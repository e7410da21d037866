// A real Prometheus server (Debian's package) for a test: on a loopback port,
// with a generated config that scrapes the given targets every second, its
// data in a temporary directory; stopped with the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface PromSample {
  readonly metric: Record<string, string>;
  readonly value: number;
}

export class Prometheus {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly log: () => string,
  ) {}

  static async start(t: ExecutionContext, scrapeTargets: readonly string[], ruleFiles: readonly string[] = []): Promise<Prometheus> {
    const dir = mkdtempSync(join(tmpdir(), 'leakscope-prometheus-'));
    const port = await freePort();
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        ...(ruleFiles.length ? ['rule_files:', ...ruleFiles.map((file) => `  - '${file}'`)] : []),
        'scrape_configs:',
        '  - job_name: leakscope',
        '    static_configs:',
        `      - targets: [${scrapeTargets.map((target) => `'${target}'`).join(', ')}]`,
        '',
      ].join('\n'),
    );
    const child = spawn(
      'prometheus',
      [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    child.stderr!.on('data', (chunk) => (log = (log + String(chunk)).slice(-4000)));
    t.teardown(() => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });
    const prometheus = new Prometheus(`http://127.0.0.1:${port}`, child, () => log);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ready = await fetch(`${prometheus.url}/-/ready`).then((r) => r.ok, () => false);
      if (ready) return prometheus;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`prometheus did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** An instant PromQL query; the samples, or an error with Prometheus's own words. */
  async query(expr: string): Promise<PromSample[]> {
    const response = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as { status: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (body.status !== 'success') throw new Error(`PromQL ${expr}: ${body.error}`);
    if (body.data!.resultType === 'scalar') return [{ metric: {}, value: Number((body.data!.result as unknown as [number, string])[1]) }];
    return body.data!.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  /** Queries until `accept` holds on the samples; fails with the last answer and Prometheus's log. */
  async until(expr: string, accept: (samples: PromSample[]) => boolean, timeoutMs = 60_000): Promise<PromSample[]> {
    const deadline = Date.now() + timeoutMs;
    let last: PromSample[] = [];
    for (;;) {
      last = await this.query(expr);
      if (accept(last)) return last;
      if (Date.now() > deadline) throw new Error(`${expr} never held; last: ${JSON.stringify(last)}\nprometheus: ${this.log().slice(-800)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Alerts firing or pending, with their labels. */
  async alerts(): Promise<{ labels: Record<string, string>; state: string }[]> {
    const body = (await (await fetch(`${this.url}/api/v1/alerts`)).json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } };
    return body.data.alerts;
  }

  /** The scrape targets' health as Prometheus sees them. */
  async targets(): Promise<{ health: string; lastError: string; scrapeUrl: string }[]> {
    const body = (await (await fetch(`${this.url}/api/v1/targets`)).json()) as { data: { activeTargets: { health: string; lastError: string; scrapeUrl: string }[] } };
    return body.data.activeTargets;
  }

  get exited(): boolean {
    return this.child.exitCode !== null;
  }
}
