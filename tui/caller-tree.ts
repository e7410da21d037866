// The Heap view's caller tree: allocation stacks merged from the code that
// allocated (each stack's own frame, past library plumbing) up through its
// callers, so that one function reached from many places is one row whose
// callers open beneath it. Pure: rows from the stacks and the open paths.
import type { AllocationStack, HeapStacks } from '../src/model/snapshot.js';
import { frameLabel, grownSinceOldest, siteFrameIndex } from '../src/model/stacks.js';

export interface TreeRow {
  /** The labels from the allocating frame to this one, joined: the row's identity across snapshots. */
  readonly path: string;
  readonly depth: number;
  readonly label: string;
  readonly live_bytes: number;
  /** Live bytes added since the stacks' oldest checkpoint (up to 16 minutes). */
  readonly grown: number;
  readonly hasCallers: boolean;
  readonly open: boolean;
}

const SEPARATOR = '\u001f';

/** The frames a stack contributes to the tree: its own frame, then its callers (inlined ones without a name dropped). */
export function callerChain(stack: AllocationStack): string[] {
  return stack.frames
    .slice(siteFrameIndex(stack.frames))
    .filter((f) => !f.inlined || f.function !== null)
    .map(frameLabel);
}

/** The paths to open so that a stack's whole chain of callers shows. */
export function pathsOf(stack: AllocationStack): string[] {
  const chain = callerChain(stack);
  return chain.slice(0, -1).map((_, k) => chain.slice(0, k + 1).join(SEPARATOR));
}

interface Node {
  readonly label: string;
  live: number;
  grown: number;
  readonly callers: Map<string, Node>;
}

export function callerTree(heap: HeapStacks | undefined, open: ReadonlySet<string>): TreeRow[] {
  if (!heap) return [];
  const roots = new Map<string, Node>();
  for (const stack of heap.stacks) {
    const grown = grownSinceOldest(stack);
    let level = roots;
    for (const label of callerChain(stack)) {
      let node = level.get(label);
      if (!node) {
        node = { label, live: 0, grown: 0, callers: new Map() };
        level.set(label, node);
      }
      node.live += stack.live_bytes;
      node.grown += grown;
      level = node.callers;
    }
  }
  const rows: TreeRow[] = [];
  const visit = (level: Map<string, Node>, prefix: string, depth: number) => {
    const ordered = [...level.values()].sort((a, b) => b.live - a.live || b.grown - a.grown);
    for (const node of ordered) {
      const path = prefix ? `${prefix}${SEPARATOR}${node.label}` : node.label;
      const isOpen = open.has(path) && node.callers.size > 0;
      rows.push({ path, depth, label: node.label, live_bytes: node.live, grown: node.grown, hasCallers: node.callers.size > 0, open: isOpen });
      if (isOpen) visit(node.callers, path, depth + 1);
    }
  };
  visit(roots, '', 0);
  return rows;
}
