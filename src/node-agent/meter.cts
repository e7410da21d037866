// leakscope's own gauges through the program's OpenTelemetry meter: where a
// MeterProvider is registered with @opentelemetry/api, leakscope adds a
// `leakscope` meter whose observable gauges the program's exporter carries
// to its collector with every other metric. Nothing is registered where the
// program has no provider, and the callback goes when the bridge is dormant.
import { getHeapStatistics } from 'node:v8';
import type { NodeRuntime } from '../model/snapshot.js' with { 'resolution-mode': 'import' };
import type { NativeAgent } from './native.cjs';
import { otelApi } from './otel.cjs';

/** Tasks idle this long count in `leakscope.tasks.idle`; LEAKSCOPE_IDLE_THRESHOLD_MS sets it (the CLI's default too). */
export const DEFAULT_GAUGE_IDLE_THRESHOLD_MS = 30_000;
export const METER_NAME = 'leakscope';
/** The attribute that splits the task gauges: promise, timer, span, or a native runtime's kind. */
export const KIND_ATTRIBUTE = 'leakscope.task.kind';

/** agent.h, agent_copy_gauges. */
interface AgentGauges {
  readonly rss_bytes: number;
  /** RssAnon; 0 when the kernel does not say. */
  readonly anon_bytes: number;
  readonly counting: boolean;
  readonly live_bytes: number | null;
  readonly unreclaimed_bytes: number | null;
  readonly tasks: readonly { readonly kind: string; readonly live: number; readonly idle: number }[];
}

type Attributes = Record<string, string>;
interface ObservableLike {
  readonly _leakscope?: never;
}
interface BatchResultLike {
  observe(observable: ObservableLike, value: number, attributes?: Attributes): void;
}
type BatchCallback = (result: BatchResultLike) => void;
interface MeterLike {
  createObservableGauge(name: string, options: { description: string; unit: string }): ObservableLike;
  addBatchObservableCallback(callback: BatchCallback, observables: ObservableLike[]): void;
  removeBatchObservableCallback(callback: BatchCallback, observables: ObservableLike[]): void;
}
interface MeterProviderLike {
  getMeter(name: string, version?: string): MeterLike;
}

/** The snapshot's `node.metrics` (src/model/snapshot.ts is the contract). */
export type MetricFacts = NonNullable<NodeRuntime['metrics']>;

interface Gauges {
  readonly meter: MeterLike;
  readonly all: ObservableLike[];
  readonly tasksLive: ObservableLike;
  readonly tasksIdle: ObservableLike;
  readonly heapLive: ObservableLike;
  readonly heapUnreclaimed: ObservableLike;
  readonly retained: ObservableLike;
}

function idleThresholdFromEnv(): number {
  const text = process.env.LEAKSCOPE_IDLE_THRESHOLD_MS;
  const value = text ? Number(text) : NaN;
  return Number.isInteger(value) && value >= 0 ? value : DEFAULT_GAUGE_IDLE_THRESHOLD_MS;
}

export class GaugePublisher {
  private gauges: Gauges | null = null;
  private readonly callback: BatchCallback;
  readonly idleThresholdMs = idleThresholdFromEnv();

  constructor(
    agent: NativeAgent,
    private readonly version: string,
  ) {
    this.callback = (result) => {
      const gauges = this.gauges;
      if (!gauges) return;
      let figures: AgentGauges;
      try {
        const json = agent.gauges(this.idleThresholdMs);
        if (json === null) return;
        figures = JSON.parse(json) as AgentGauges;
      } catch {
        return; // never the program's problem: this collection has no leakscope figures
      }
      for (const kind of figures.tasks) {
        const attributes = { [KIND_ATTRIBUTE]: kind.kind };
        result.observe(gauges.tasksLive, kind.live, attributes);
        result.observe(gauges.tasksIdle, kind.idle, attributes);
      }
      if (figures.live_bytes === null) return;
      result.observe(gauges.heapLive, figures.live_bytes);
      if (figures.unreclaimed_bytes !== null) result.observe(gauges.heapUnreclaimed, figures.unreclaimed_bytes);
      // What anonymous memory holds beyond live data (the native heap's live
      // bytes and V8's heap), as src/analysis/measured.ts measures retention.
      const v8Heap = getHeapStatistics().total_heap_size;
      const anon = figures.anon_bytes || figures.rss_bytes;
      result.observe(gauges.retained, Math.max(0, anon - figures.live_bytes - v8Heap));
    };
  }

  /** Publishes where a meter provider is registered now; call again to catch one registered later. */
  start(): void {
    if (this.gauges) return;
    const provider = otelApi()?.metrics as MeterProviderLike | undefined;
    if (!provider || typeof provider.getMeter !== 'function') return;
    try {
      const meter = provider.getMeter(METER_NAME, this.version);
      const gauge = (name: string, description: string, unit: string) => meter.createObservableGauge(name, { description, unit });
      const idleFor = `${this.idleThresholdMs / 1000} s`;
      const gauges = {
        meter,
        tasksLive: gauge('leakscope.tasks.live', 'Tasks (promises, timers, spans) not finished, by kind.', '{task}'),
        tasksIdle: gauge('leakscope.tasks.idle', `Live tasks with nothing to do for at least ${idleFor}, by kind.`, '{task}'),
        heapLive: gauge('leakscope.heap.live', 'Native heap bytes allocated and not freed (leakscope ledger).', 'By'),
        heapUnreclaimed: gauge(
          'leakscope.heap.unreclaimed',
          'Bytes other threads freed that the owning threads have not reclaimed yet (allocator delayed frees).',
          'By',
        ),
        retained: gauge('leakscope.memory.retained', 'RSS beyond live native bytes and the V8 heap: memory the allocator keeps.', 'By'),
      };
      const all = [gauges.tasksLive, gauges.tasksIdle, gauges.heapLive, gauges.heapUnreclaimed, gauges.retained];
      meter.addBatchObservableCallback(this.callback, all);
      this.gauges = { ...gauges, all };
    } catch {
      /* a provider that does not take them: nothing published */
    }
  }

  stop(): void {
    if (!this.gauges) return;
    try {
      this.gauges.meter.removeBatchObservableCallback(this.callback, this.gauges.all);
    } catch {
      /* the provider is shut down already */
    }
    this.gauges = null;
  }

  facts(): MetricFacts {
    return { published: this.gauges !== null, idle_threshold_ms: this.idleThresholdMs };
  }
}
