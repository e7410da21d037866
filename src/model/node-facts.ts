// The Node bridge's part of an agent snapshot (src/node-agent/bridge.cts
// writes it, the addon's runtime_bridge.cc wraps it) and what a snapshot
// says about it.
import type { NodeRuntime, ThreadRole } from './snapshot.js';

type BridgeFacts = Omit<NodeRuntime, 'version' | 'recording_since' | 'responsive' | 'answered_at' | 'loop_delay_ms' | 'loop_utilization'> & {
  node_version: string;
  /** tid → role (src/node-agent/threads.cts); not part of the snapshot's `node`, but of its threads. */
  thread_roles?: Record<string, ThreadRole>;
  recording_since_ms: number;
  event_loop: { answer_delay_ms: number; utilization: number };
};

export interface AgentNodeFacts {
  responsive: boolean;
  waited_ms: number;
  answered_ms: number | null;
  bridge: BridgeFacts | null;
}

export function nodeFromFacts(facts: AgentNodeFacts | undefined): NodeRuntime | undefined {
  const bridge = facts?.bridge;
  if (!facts || !bridge) return undefined;
  return {
    version: bridge.node_version,
    state: bridge.state,
    linger_ms: bridge.linger_ms,
    recording_since: new Date(bridge.recording_since_ms).toISOString(),
    from_start: bridge.from_start,
    responsive: facts.responsive,
    answered_at: facts.answered_ms === null ? null : new Date(facts.answered_ms).toISOString(),
    loop_delay_ms: facts.responsive ? bridge.event_loop.answer_delay_ms : facts.waited_ms,
    loop_utilization: bridge.event_loop.utilization,
    promises: bridge.promises,
    timers: bridge.timers,
    spans: bridge.spans,
    ...(bridge.metrics ? { metrics: bridge.metrics } : {}),
    handles: bridge.handles,
    active_resources: bridge.active_resources,
    v8_heap: bridge.v8_heap,
  };
}

/** What a Node snapshot cannot see, in words, for `agent.notes`. */
export function nodeNotes(node: NodeRuntime | undefined, facts: AgentNodeFacts | undefined, ledgerCounting: boolean): string[] {
  const notes: string[] = [];
  if (facts && !facts.responsive)
    notes.push(
      node
        ? `the event loop did not answer within ${Math.round(facts.waited_ms)} ms (busy); promises, timers and handles are as of ${node.answered_at}`
        : `the event loop did not answer within ${Math.round(facts.waited_ms)} ms (busy) and has never answered: no promises, timers or handles`,
    );
  if (!node) return notes;
  if (!ledgerCounting)
    notes.push("attached to a running Node process: native allocations are not counted (start it with 'leakscope run' for the per-thread heap)");
  if (node.state === 'dormant') notes.push('the Node bridge is dormant (hooks removed); it records again from the next attach');
  else if (!node.from_start)
    notes.push(`promises, timers and spans are recorded from ${node.recording_since}; those created earlier have no site`);
  if (node.promises.existed_at_attach > 0)
    notes.push(`${node.promises.existed_at_attach} promises were pending at attach: counted at site '(existed at attach)'`);
  const sparsest = Math.max(node.promises.sample_interval, node.promises.sparsest_sample_interval ?? 1);
  if (sparsest > 1)
    notes.push(
      node.promises.sample_interval > 1
        ? `promises come fast: about one in ${node.promises.sample_interval} has its site recorded, and promise counts are estimates`
        : `promises came fast (one in up to ${sparsest} had its site recorded): promise counts are estimates`,
    );
  if (!node.timers.patched && node.state !== 'dormant') notes.push('timers are not followed');
  return notes;
}
