// The fleet's metrics in the OpenTelemetry SDK's own data model, made at each
// collection from the targets' latest snapshots. A MetricProducer rather
// than observable instruments: the SDK keeps every attribute set an
// asynchronous instrument ever reported (cumulative temporality), so a
// process that exited would stay on /metrics forever; here a collection
// holds exactly the targets there are now.
import { type Attributes as OtelAttributes, type HrTime, ValueType } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  type CollectionResult,
  DataPointType,
  type MetricData,
  type MetricProducer,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { type Attributes, METRICS, type MetricKind, type Point } from './metrics.js';
import type { TargetProblem, TargetState } from './fleet.js';

export const SCOPE = { name: 'leakscope' } as const;

/** The keys of a target's identity: resource attributes in OTLP, labels on every series in Prometheus. */
export const TARGET_KEYS = ['service.name', 'service.instance.id', 'host.name', 'process.pid'] as const;

const PROBLEMS: readonly TargetProblem[] = ['busy', 'permission', 'unreachable'];

function hrTime(ms: number): HrTime {
  return [Math.floor(ms / 1000), Math.round((ms % 1000) * 1e6)];
}

interface Series {
  readonly name: string;
  readonly unit: string;
  readonly description: string;
  readonly kind: MetricKind;
  readonly integer: boolean;
  readonly points: { value: number; attributes: OtelAttributes; startMs: number }[];
}

function metricData(series: Series, nowMs: number): MetricData {
  const descriptor = { name: series.name, description: series.description, unit: series.unit, valueType: series.integer ? ValueType.INT : ValueType.DOUBLE };
  const end = hrTime(nowMs);
  const dataPoints = series.points.map((p) => ({ startTime: series.kind === 'gauge' ? end : hrTime(p.startMs), endTime: end, attributes: p.attributes, value: p.value }));
  if (series.kind === 'gauge') return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints };
  return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: series.kind === 'counter', dataPoints };
}

/** Every metric's points for the targets as they are now. */
export function fleetMetrics(targets: readonly TargetState[], nowMs: number): MetricData[] {
  const up: Series = { name: 'leakscope.target.up', unit: '1', description: 'Whether leakscope gets snapshots of the process (1) or not (0), by how it sees it.', kind: 'gauge', integer: true, points: [] };
  const failures: Series = {
    name: 'leakscope.target.failures',
    unit: '{failure}',
    description: 'Times the process stopped answering, by why: busy (another leakscope client holds its agent), permission, unreachable.',
    kind: 'counter',
    integer: true,
    points: [],
  };
  const series: Series[] = METRICS.map((spec) => ({ ...spec, points: [] }));
  for (const target of targets) {
    const startMs = target.startedAt.getTime();
    const withTarget = (point: Point | { value: number; attributes?: Attributes }) => ({
      value: point.value,
      attributes: { ...target.identity, ...point.attributes } as OtelAttributes,
      startMs,
    });
    up.points.push(withTarget({ value: target.snapshot ? 1 : 0, attributes: { 'leakscope.agent.mode': target.snapshot?.agent.mode ?? 'none' } }));
    for (const problem of PROBLEMS)
      failures.points.push(withTarget({ value: target.failures.get(problem) ?? 0, attributes: { 'leakscope.target.problem': problem } }));
    if (!target.snapshot) continue;
    METRICS.forEach((spec, i) => {
      for (const point of spec.points(target.snapshot!)) series[i]!.points.push(withTarget(point));
    });
  }
  return [up, failures, ...series].filter((s) => s.points.length > 0 || s === up).map((s) => metricData(s, nowMs));
}

export class FleetProducer implements MetricProducer {
  constructor(private readonly targets: () => readonly TargetState[]) {}

  collect(): Promise<CollectionResult> {
    return Promise.resolve({
      // The reader keeps its own resource (the exporter's) and takes the scopes.
      resourceMetrics: { resource: resourceFromAttributes({}), scopeMetrics: [{ scope: SCOPE, metrics: fleetMetrics(this.targets(), Date.now()) }] },
      errors: [],
    });
  }
}

/**
 * An OTLP push exporter that sends each target as its own resource (its
 * service.name, service.instance.id, host.name and process.pid), as if each
 * process had exported its metrics itself.
 */
export class ResourcePerTarget implements PushMetricExporter {
  constructor(private readonly inner: PushMetricExporter) {}

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    const batches = splitByTarget(metrics);
    let index = 0;
    const next = (result: ExportResult): void => {
      if (result.code !== ExportResultCode.SUCCESS || index >= batches.length) return resultCallback(result);
      this.inner.export(batches[index++]!, next);
    };
    next({ code: ExportResultCode.SUCCESS });
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  selectAggregationTemporality = (): AggregationTemporality => AggregationTemporality.CUMULATIVE;
}

/** One ResourceMetrics per target: the identity attributes leave the points for the resource. */
export function splitByTarget(metrics: ResourceMetrics): ResourceMetrics[] {
  const byTarget = new Map<string, { identity: OtelAttributes; metrics: Map<MetricData, MetricData['dataPoints']> }>();
  for (const scope of metrics.scopeMetrics)
    for (const metric of scope.metrics)
      for (const point of metric.dataPoints) {
        const identity: OtelAttributes = {};
        const rest: OtelAttributes = {};
        for (const [key, value] of Object.entries(point.attributes)) ((TARGET_KEYS as readonly string[]).includes(key) ? identity : rest)[key] = value;
        const key = JSON.stringify(TARGET_KEYS.map((k) => identity[k]));
        let target = byTarget.get(key);
        if (!target) byTarget.set(key, (target = { identity, metrics: new Map() }));
        const points = target.metrics.get(metric) ?? [];
        (points as unknown[]).push({ ...point, attributes: rest });
        target.metrics.set(metric, points);
      }
  return [...byTarget.values()].map(({ identity, metrics: points }) => ({
    resource: resourceFromAttributes(identity),
    scopeMetrics: [{ scope: SCOPE, metrics: [...points].map(([metric, dataPoints]) => ({ ...metric, dataPoints }) as MetricData) }],
  }));
}
