// leakscope export: a long-running exporter of leakscope's snapshots and
// findings for one or more processes (or every process with an agent, --all)
// to Prometheus (an OpenMetrics /metrics endpoint) and OTLP/HTTP, through
// the OpenTelemetry SDK's own exporters. It keeps one agent client per
// process and goes on serving the others when one exits or refuses.
import { hostname } from 'node:os';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { type MetricReader, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import type { Thresholds } from '../../analysis/detector.js';
import { parsePid } from '../../conn/target.js';
import { LeakscopeError } from '../../errors.js';
import { Fleet } from '../../export/fleet.js';
import { FleetProducer, ResourcePerTarget } from '../../export/producer.js';

export interface ExportOptions {
  readonly all: boolean;
  readonly prometheus?: string;
  readonly otlp?: string;
  readonly intervalMs: number;
  readonly serviceName?: string;
  readonly thresholds: Thresholds;
}

/** HOST:PORT, [v6]:PORT or PORT (on 127.0.0.1). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new LeakscopeError(`--prometheus expects HOST:PORT (like 127.0.0.1:9464), not '${text}'`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

export function parseOtlpUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new LeakscopeError(`--otlp expects a URL (like http://127.0.0.1:4318/v1/metrics), not '${text}'`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new LeakscopeError(`--otlp expects an http or https URL, not '${text}'`);
  // An OTLP/HTTP endpoint given as the collector's base URL gets the metrics path, as the SDK's environment variable would.
  return url.pathname === '/' ? new URL('/v1/metrics', url).href : url.href;
}

function startPrometheus(listen: { host: string; port: number }, producer: FleetProducer): Promise<PrometheusExporter> {
  return new Promise((resolve, reject) => {
    const exporter: PrometheusExporter = new PrometheusExporter({ host: listen.host, port: listen.port, metricProducers: [producer] }, (error) =>
      error
        ? reject(new LeakscopeError(`cannot serve /metrics on ${listen.host}:${listen.port}: ${(error as NodeJS.ErrnoException).code ?? error.message}`))
        : resolve(exporter),
    );
  });
}

export async function exportCommand(pidTexts: readonly string[], options: ExportOptions): Promise<number> {
  const pids = pidTexts.map(parsePid);
  if (pids.length === 0 && !options.all) throw new LeakscopeError('name the pids to export, or --all for every process with a leakscope agent');
  if (!options.prometheus && !options.otlp) throw new LeakscopeError('say where to: --prometheus HOST:PORT, --otlp URL, or both');
  const listen = options.prometheus ? parseListen(options.prometheus) : null;
  const otlpUrl = options.otlp ? parseOtlpUrl(options.otlp) : null;
  const log = (line: string): void => void process.stderr.write(`leakscope export: ${line}\n`);

  const fleet = new Fleet({ pids, all: options.all, intervalMs: options.intervalMs, thresholds: options.thresholds, serviceName: options.serviceName, log });
  const producer = new FleetProducer(() => fleet.states());
  const readers: MetricReader[] = [];
  if (listen) readers.push(await startPrometheus(listen, producer));
  if (otlpUrl)
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new ResourcePerTarget(new OTLPMetricExporter({ url: otlpUrl })),
        exportIntervalMillis: options.intervalMs,
        exportTimeoutMillis: Math.min(options.intervalMs, 30_000),
        metricProducers: [producer],
      }),
    );
  // The readers' own resource: this exporter. Each process is named on its series (Prometheus) or as its own resource (OTLP).
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'leakscope-export', 'host.name': hostname(), 'process.pid': process.pid }),
    readers,
  });
  await fleet.start();
  if (listen) log(`serving http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}/metrics`);
  if (otlpUrl) log(`pushing to ${otlpUrl} every ${options.intervalMs / 1000} s`);

  // Runs until stopped, even with no target left and nothing else to wait for (the SDK's HTTP server does not hold the process).
  const running = setInterval(() => undefined, 2 ** 30);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  clearInterval(running);
  await fleet.close();
  await provider.shutdown().catch((error: Error) => log(`at shutdown: ${error.message}`));
  return 0;
}
