// Where the JavaScript heap was allocated: V8's sampling heap profiler over
// an in-process inspector session (no restart, no port), started while the
// bridge records. It keeps one sample per ~64 KiB allocated, and only the
// samples whose objects are still alive: a live-heap profile by stack. Every
// 30 s the live bytes of each stack are kept (up to 16 minutes), so that a
// growth can be told by stack. V8 keeps its profile nodes for the whole
// sampling session, so their ids are stable between reads.
import type { Session } from 'node:inspector';

export const SAMPLE_BYTES = 65536;
const CHECKPOINT_MS = 30_000;
const CHECKPOINTS = 32;
/** Stacks sent: this many by live bytes, and as many more by growth. */
const SENT = 100;

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  selfSize: number;
  children: ProfileNode[];
}
interface SamplingProfile {
  head: ProfileNode;
  samples?: { size: number; nodeId: number }[];
}

/** One stack as the CLI reads it (src/model/node-facts.ts). */
export interface JsStackFacts {
  id: number;
  live_bytes: number;
  live_blocks: number;
  live_at: number[];
  frames: { function: string; url: string; line: number; column: number }[];
}

export class JsHeapProfile {
  private session: Session | null = null;
  private error: string | null = null;
  private readonly checkpoints: { t_ms: number; live: Map<number, number> }[] = [];
  private lastCheckpointMs = 0;

  start(): void {
    if (this.session) return;
    try {
      const inspector = (process.getBuiltinModule?.('inspector') ?? require('node:inspector')) as typeof import('node:inspector');
      const session = new inspector.Session();
      session.connect();
      session.post('HeapProfiler.enable');
      session.post('HeapProfiler.startSampling', { samplingInterval: SAMPLE_BYTES }, (error) => {
        if (error) this.error = error.message;
      });
      this.session = session;
      this.checkpoints.length = 0;
      this.lastCheckpointMs = 0;
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
    }
  }

  stop(): void {
    if (!this.session) return;
    try {
      this.session.post('HeapProfiler.stopSampling');
      this.session.disconnect();
    } catch {
      // the process is on its way out
    }
    this.session = null;
  }

  /** Once a second from the bridge: a checkpoint every 30 s. */
  tick(now = Date.now()): void {
    if (!this.session || now - this.lastCheckpointMs < CHECKPOINT_MS) return;
    const profile = this.read();
    if (!profile) return;
    this.lastCheckpointMs = now;
    const live = new Map<number, number>();
    walk(profile.head, [], (node) => {
      if (node.selfSize > 0) live.set(node.id, node.selfSize);
    });
    this.checkpoints.push({ t_ms: now, live });
    if (this.checkpoints.length > CHECKPOINTS) this.checkpoints.shift();
  }

  facts(): { sample_bytes: number; checkpoint_ms: number[]; stacks: JsStackFacts[]; error?: string } | null {
    if (!this.session) return this.error ? { sample_bytes: SAMPLE_BYTES, checkpoint_ms: [], stacks: [], error: this.error } : null;
    const profile = this.read();
    if (!profile) return { sample_bytes: SAMPLE_BYTES, checkpoint_ms: [], stacks: [], error: this.error ?? 'no profile' };
    // Samples per node: how many objects its bytes stand for.
    const sampled = new Map<number, { count: number; bytes: number }>();
    for (const s of profile.samples ?? []) {
      const x = sampled.get(s.nodeId) ?? { count: 0, bytes: 0 };
      x.count += 1;
      x.bytes += s.size;
      sampled.set(s.nodeId, x);
    }
    const stacks: JsStackFacts[] = [];
    walk(profile.head, [], (node, path) => {
      if (node.selfSize <= 0) return;
      const s = sampled.get(node.id);
      stacks.push({
        id: node.id,
        live_bytes: node.selfSize,
        live_blocks: s && s.bytes > 0 ? Math.round((s.count * node.selfSize) / s.bytes) : 1,
        live_at: this.checkpoints.map((c) => c.live.get(node.id) ?? 0),
        frames: path
          .slice()
          .reverse()
          .map((f) => ({ function: f.functionName, url: f.url, line: f.lineNumber + 1, column: f.columnNumber + 1 })),
      });
    });
    const byLive = [...stacks].sort((a, b) => b.live_bytes - a.live_bytes);
    const first = (s: JsStackFacts) => s.live_at[0] ?? 0;
    const byGrowth = byLive.slice(SENT).sort((a, b) => b.live_bytes - first(b) - (a.live_bytes - first(a)));
    return {
      sample_bytes: SAMPLE_BYTES,
      checkpoint_ms: this.checkpoints.map((c) => c.t_ms),
      stacks: [...byLive.slice(0, SENT), ...byGrowth.slice(0, SENT)],
    };
  }

  private read(): SamplingProfile | null {
    const read: { profile: SamplingProfile | null } = { profile: null };
    // An in-process session answers on the caller's stack.
    this.session?.post('HeapProfiler.getSamplingProfile', (error, answer) => {
      if (error) this.error = error.message;
      else read.profile = (answer as unknown as { profile: SamplingProfile }).profile;
    });
    return read.profile;
  }
}

function walk(node: ProfileNode, path: CallFrame[], visit: (node: ProfileNode, path: CallFrame[]) => void): void {
  const here = node.callFrame.functionName === '(root)' ? path : [...path, node.callFrame];
  visit(node, here);
  for (const child of node.children) walk(child, here, visit);
}
