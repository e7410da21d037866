// The whole keyboard in one place: a key press becomes state actions and
// intents for the command wiring (the console itself does no I/O).
import type { Key } from 'ink';
import type { TaskQuery } from '../src/conn/attach.js';
import type { Snapshot } from '../src/model/snapshot.js';
import { type Action, type ConsoleState, displayed, editingFilter, reduce, VIEWS } from './state.js';

export type Intent =
  | { readonly type: 'query'; readonly query: TaskQuery }
  | { readonly type: 'pause'; readonly paused: boolean }
  | { readonly type: 'reclaim' }
  | { readonly type: 'save'; readonly snapshot: Snapshot }
  | { readonly type: 'quit' };

export interface Command {
  readonly actions: readonly Action[];
  readonly intents: readonly Intent[];
}

const NOTHING: Command = { actions: [], intents: [] };

function act(...actions: Action[]): Command {
  return { actions, intents: [] };
}

function filterKeys(input: string, key: Key): Command {
  if (key.return) return act({ type: 'filter-done', keep: true });
  if (key.escape) return act({ type: 'filter-done', keep: false });
  if (key.backspace || key.delete) return act({ type: 'filter-erase' });
  if (key.ctrl || key.meta || key.tab || key.upArrow || key.downArrow) return NOTHING;
  // Printable text only (a paste may bring several characters at once).
  const text = [...input].filter((c) => c >= ' ' && c !== '\u007f').join('');
  return text ? act({ type: 'filter-type', text }) : NOTHING;
}

/**
 * Keys typed faster than the console reads them arrive as one chunk ("/heap"
 * from a quick typist or a paste): each character is a key press of its own,
 * read in the state the ones before it left.
 */
export function commandsFor(input: string, key: Key, state: ConsoleState, pageRows: number): Command {
  const printable = input.length > 1 && !key.ctrl && !key.meta && [...input].every((c) => c >= ' ' && c !== '\u007f');
  if (!printable) return commandFor(input, key, state, pageRows);
  const actions: Action[] = [];
  const intents: Intent[] = [];
  let current = state;
  for (const char of input) {
    const command = commandFor(char, key, current, pageRows);
    actions.push(...command.actions);
    intents.push(...command.intents);
    current = command.actions.reduce(reduce, current);
  }
  return { actions, intents };
}

export function commandFor(input: string, key: Key, state: ConsoleState, pageRows: number): Command {
  if (editingFilter(state)) return filterKeys(input, key);
  if (state.reclaim.state === 'confirm') {
    if (input === 'y' || input === 'Y') return { actions: [{ type: 'reclaim', reclaim: { state: 'running' } }], intents: [{ type: 'reclaim' }] };
    return act({ type: 'reclaim', reclaim: { state: 'idle' } });
  }
  if (input === 'q' || (key.ctrl && input === 'c')) return { actions: [], intents: [{ type: 'quit' }] };
  if (input === '?') return act({ type: 'toggle-help' });
  if (key.escape) return act({ type: 'back' });
  const viewNumber = Number(input);
  if (Number.isInteger(viewNumber) && viewNumber >= 1 && viewNumber <= VIEWS.length)
    return act({ type: 'show-view', view: VIEWS[viewNumber - 1]! });
  if (key.tab) return act({ type: 'cycle-view', step: key.shift ? -1 : 1 });
  if (key.upArrow || input === 'k') return act({ type: 'move', delta: -1 });
  if (key.downArrow || input === 'j') return act({ type: 'move', delta: 1 });
  if (key.pageUp) return act({ type: 'move', delta: -pageRows });
  if (key.pageDown) return act({ type: 'move', delta: pageRows });
  if (key.home) return act({ type: 'move-to', end: 'first' });
  if (key.end || input === 'G') return act({ type: 'move-to', end: 'last' });
  if (state.source === 'replay') {
    if (key.leftArrow) return act({ type: 'step', delta: -1 });
    if (key.rightArrow) return act({ type: 'step', delta: 1 });
  }
  if (input === ' ') {
    if (state.source !== 'live') return NOTHING;
    return { actions: [{ type: 'toggle-pause' }], intents: [{ type: 'pause', paused: !state.paused }] };
  }
  if (input === 's') {
    const snapshot = displayed(state);
    return snapshot ? { actions: [], intents: [{ type: 'save', snapshot }] } : NOTHING;
  }
  if (input === 'r') {
    if (state.source !== 'live')
      return act({ type: 'notice', text: 'reclaim runs in a live process: attach to it (this is a recording)' });
    if (state.connection.state !== 'connected' || state.connection.via !== 'agent')
      return act({ type: 'notice', text: 'reclaim needs the leakscope agent in the process (start it with leakscope run)' });
    return act({ type: 'show-view', view: 'heap' }, { type: 'reclaim', reclaim: { state: 'confirm' } });
  }
  if (key.return && (state.view === 'heap' || state.view === 'findings')) return act({ type: 'open' });
  if (state.view === 'tasks') {
    if (input === '/') return act({ type: 'filter-start' });
    if (input === 'g') return act({ type: 'toggle-group' });
    if (input === 'o') return act({ type: 'cycle-sort' });
    if (key.return) return act({ type: 'open' });
  }
  return NOTHING;
}
