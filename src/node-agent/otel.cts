// OpenTelemetry spans started and never ended. The program's own
// @opentelemetry/api keeps its registered providers on a global symbol; where
// an SDK tracer provider is registered, leakscope adds a span processor to
// it (and takes it out again when it goes dormant). It registers no context
// manager and no provider of its own.
import type { NodeRuntime } from '../model/snapshot.js' with { 'resolution-mode': 'import' };
import type { NativeAgent } from './native.cjs';
import { captureSite } from './sites.cjs';

const API_KEY = Symbol.for('opentelemetry.js.api.1');

interface SpanLike {
  readonly name?: string;
}
interface SpanProcessorLike {
  onStart(span: SpanLike, context: unknown): void;
  onEnd(span: SpanLike): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}
interface ProviderLike {
  getDelegate?: () => ProviderLike;
  _activeSpanProcessor?: { _spanProcessors?: SpanProcessorLike[] };
  activeSpanProcessor?: { _spanProcessors?: SpanProcessorLike[] };
}

/** The snapshot's `node.spans` (src/model/snapshot.ts is the contract). */
export type SpanFacts = NodeRuntime['spans'];

/** What the program's @opentelemetry/api registered: its version and global providers. */
export interface OtelApiGlobal {
  readonly version?: string;
  readonly trace?: ProviderLike;
  readonly metrics?: unknown;
}

/** The program's registered OpenTelemetry globals, whichever copy of the API it loaded. */
export function otelApi(): OtelApiGlobal | undefined {
  return (globalThis as unknown as Record<symbol, OtelApiGlobal | undefined>)[API_KEY];
}

function processorList(): SpanProcessorLike[] | null {
  const registered = otelApi()?.trace;
  if (!registered) return null;
  const provider = registered.getDelegate?.() ?? registered;
  // SDK 2.x keeps them on _activeSpanProcessor, 1.x on activeSpanProcessor.
  const multi = provider._activeSpanProcessor ?? provider.activeSpanProcessor;
  return Array.isArray(multi?._spanProcessors) ? multi._spanProcessors : null;
}

export class SpanTracker {
  private readonly ids = new WeakMap<object, number>();
  private readonly open = new Set<number>();
  private list: SpanProcessorLike[] | null = null;
  private readonly processor: SpanProcessorLike;

  constructor(agent: NativeAgent) {
    this.processor = {
      onStart: (span) => {
        let id = 0;
        try {
          id = agent.spawn('span', typeof span.name === 'string' && span.name ? span.name : null, captureSite(), 0, true, 0);
        } catch {
          return; // never the program's problem: the span goes unrecorded
        }
        if (id === 0) return;
        this.ids.set(span, id);
        this.open.add(id);
      },
      onEnd: (span) => {
        const id = this.ids.get(span);
        if (id === undefined) return;
        this.ids.delete(span);
        this.open.delete(id);
        agent.complete(id);
      },
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
    this.complete = (id) => agent.complete(id);
  }

  private readonly complete: (id: number) => void;

  /** Hooks in where a provider is registered now; call again to catch one registered later. */
  start(): void {
    if (this.list || !otelApi()?.trace) return;
    const list = processorList();
    if (!list) return;
    list.push(this.processor);
    this.list = list;
  }

  stop(): void {
    if (this.list) {
      const at = this.list.indexOf(this.processor);
      if (at >= 0) this.list.splice(at, 1);
      this.list = null;
    }
    for (const id of this.open) this.complete(id);
    this.open.clear();
  }

  facts(): SpanFacts {
    const api = otelApi();
    return {
      api: !api ? 'none' : this.list ? 'hooked' : 'no-sdk',
      api_version: api?.version ?? null,
      open: this.open.size,
    };
  }
}
