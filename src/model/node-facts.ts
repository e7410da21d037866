// The Node bridge's part of an agent snapshot (src/node-agent/bridge.cts
// writes it, the addon's runtime_bridge.cc wraps it) and what a snapshot
// says about it.
import type { NodeRuntime, NodeWorker, ThreadRole } from './snapshot.js';

type BridgeFacts = Omit<NodeRuntime, 'version' | 'recording_since' | 'responsive' | 'answered_at' | 'loop_delay_ms' | 'loop_utilization' | 'workers'> & {
  node_version: string;
  /** tid → role (src/node-agent/threads.cts); not part of the snapshot's `node`, but of its threads. */
  thread_roles?: Record<string, ThreadRole>;
  /** The heap hooks put into the loaded objects' GOT when attached late (src/node-agent/bridge.cts). */
  heap_hooks?: { objects: number; entries: number; error: string | null };
  /** The main thread's follower of workers (src/node-agent/workers.cts), when attached late. */
  worker_follower?: { joined: number; failed: number; last_error: string | null };
  recording_since_ms: number;
  event_loop: { answer_delay_ms: number; utilization: number };
  /** A worker's bridge only. */
  script?: string | null;
  /** The main thread's sampling heap profile (src/node-agent/heap-profile.cts); null before it started. */
  heap_profile?: JsHeapProfileFacts | null;
};

export interface JsHeapProfileFacts {
  sample_bytes: number;
  checkpoint_ms: number[];
  stacks: { id: number; live_bytes: number; live_blocks: number; live_at: number[]; frames: { function: string; url: string; line: number; column: number }[] }[];
  error?: string;
}

/** One loop's answer, as runtime_bridge.cc wraps it. */
interface LoopAnswer {
  responsive: boolean;
  waited_ms: number;
  answered_ms: number | null;
  bridge: BridgeFacts | null;
}

export interface AgentNodeFacts extends LoopAnswer {
  /** Worker threads' bridges (absent from agents before they were followed). */
  workers?: (LoopAnswer & { thread_id: number; tid: number })[];
}

/** What one loop (the main thread's or a worker's) reports of itself. */
type LoopPart = Pick<
  NodeWorker,
  'state' | 'responsive' | 'answered_at' | 'loop_delay_ms' | 'loop_utilization' | 'promises' | 'timers' | 'spans' | 'handles' | 'active_resources' | 'v8_heap'
>;

function loopFromFacts(facts: LoopAnswer, bridge: BridgeFacts): LoopPart {
  return {
    state: bridge.state,
    responsive: facts.responsive,
    answered_at: facts.answered_ms === null ? null : new Date(facts.answered_ms).toISOString(),
    loop_delay_ms: facts.responsive ? bridge.event_loop.answer_delay_ms : facts.waited_ms,
    loop_utilization: bridge.event_loop.utilization,
    promises: bridge.promises,
    timers: bridge.timers,
    spans: bridge.spans,
    handles: bridge.handles,
    active_resources: bridge.active_resources,
    v8_heap: bridge.v8_heap,
  };
}

function workerFromFacts(facts: NonNullable<AgentNodeFacts['workers']>[number]): NodeWorker | null {
  const bridge = facts.bridge;
  if (!bridge) return null; // joined, never answered yet
  return { thread_id: facts.thread_id, tid: facts.tid, script: bridge.script ?? null, ...loopFromFacts(facts, bridge) };
}

/** tid → role of a Node process's threads: the main bridge's finding, and each worker's own thread. */
export function nodeThreadRoles(facts: AgentNodeFacts | undefined): Record<string, ThreadRole> {
  const roles: Record<string, ThreadRole> = { ...facts?.bridge?.thread_roles };
  for (const worker of facts?.workers ?? []) roles[worker.tid] = 'worker';
  return roles;
}

export function nodeFromFacts(facts: AgentNodeFacts | undefined): NodeRuntime | undefined {
  const bridge = facts?.bridge;
  if (!facts || !bridge) return undefined;
  return {
    version: bridge.node_version,
    linger_ms: bridge.linger_ms,
    recording_since: new Date(bridge.recording_since_ms).toISOString(),
    from_start: bridge.from_start,
    ...loopFromFacts(facts, bridge),
    ...(bridge.metrics ? { metrics: bridge.metrics } : {}),
    ...(bridge.v8_heap_history ? { v8_heap_history: bridge.v8_heap_history, v8_heap_spaces: bridge.v8_heap_spaces ?? [] } : {}),
    workers: (facts.workers ?? []).map(workerFromFacts).filter((w): w is NodeWorker => w !== null),
  };
}

/** What a Node snapshot cannot see, in words, for `agent.notes`. */
export function nodeNotes(
  node: NodeRuntime | undefined,
  facts: AgentNodeFacts | undefined,
  ledgerCounting: boolean,
  countedSince: string | undefined,
): string[] {
  const notes: string[] = [];
  if (facts && !facts.responsive)
    notes.push(
      node
        ? `the event loop did not answer within ${Math.round(facts.waited_ms)} ms (busy); promises, timers and handles are as of ${node.answered_at}`
        : `the event loop did not answer within ${Math.round(facts.waited_ms)} ms (busy) and has never answered: no promises, timers or handles`,
    );
  if (!node) return notes;
  const hooks = facts?.bridge?.heap_hooks;
  if (!ledgerCounting)
    notes.push(
      `native allocations are not counted${hooks?.error ? ` (${hooks.error})` : node.state === 'dormant' ? ' while dormant' : ''}; start the program with 'leakscope run' for the whole per-thread heap`,
    );
  else if (countedSince)
    notes.push(
      `attached late: native allocations are counted from ${countedSince} (hooks in ${hooks?.objects ?? '?'} loaded objects; what libc allocates for itself may be missed); earlier blocks are not, so live bytes are the estimate from blocks sampled since ('leakscope run' counts all)`,
    );
  if (node.state === 'dormant') notes.push('the Node bridge is dormant (hooks removed); it records again from the next attach');
  else if (!node.from_start)
    notes.push(`promises, timers and spans are recorded from ${node.recording_since}; those created earlier have no site`);
  const existed = node.workers.reduce((sum, w) => sum + w.promises.existed_at_attach, node.promises.existed_at_attach);
  if (existed > 0) notes.push(`${existed} promises were pending at attach: counted at site '(existed at attach)'`);
  const sparsest = Math.max(node.promises.sample_interval, node.promises.sparsest_sample_interval ?? 1);
  if (sparsest > 1)
    notes.push(
      node.promises.sample_interval > 1
        ? `promises come fast: about one in ${node.promises.sample_interval} has its site recorded, and promise counts are estimates`
        : `promises came fast (one in up to ${sparsest} had its site recorded): promise counts are estimates`,
    );
  if (!node.timers.patched && node.state !== 'dormant') notes.push('timers are not followed');
  for (const worker of node.workers)
    if (!worker.responsive)
      notes.push(`worker ${worker.thread_id}'s event loop did not answer (busy): its promises, timers and handles are as of ${worker.answered_at}`);
  const follower = facts?.bridge?.worker_follower;
  if (follower && follower.failed > 0)
    notes.push(`${follower.failed} worker thread(s) could not be followed (last: ${follower.last_error}); their promises and timers are not recorded`);
  return notes;
}
