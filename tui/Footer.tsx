// The bottom two lines: a question or a notice, then the keys that work here.
import { Text } from 'ink';
import type { ReactNode } from 'react';
import type { Snapshot } from '../src/model/snapshot.js';
import { type ConsoleState, editingFilter } from './state.js';

export interface FooterProps {
  readonly state: ConsoleState;
  readonly snapshot: Snapshot | null;
}

function hints(state: ConsoleState): string {
  if (editingFilter(state)) return 'type to filter · Enter keep · Esc drop';
  const common = state.source === 'replay' ? '←/→ step · s save · ? help · q quit' : 'r reclaim · space pause · s save · ? help · q quit';
  if (state.view === 'tasks') {
    if (state.tasks.detail) return `Esc back · ${common}`;
    return `/ filter · g ${state.tasks.grouped ? 'ungroup' : 'group'} · o sort · Enter ${state.tasks.grouped ? 'site' : 'details'} · ${common}`;
  }
  return `1-4/Tab views · ↑↓ move · ${common}`;
}

export function Footer({ state, snapshot }: FooterProps) {
  let line: ReactNode;
  if (state.reclaim.state === 'confirm') {
    const action = snapshot?.allocator.reclaim_action ?? "the allocator's reclaim";
    line = (
      <Text color="yellow" bold wrap="truncate">
        Run {action} in pid {snapshot?.pid}? y/n (frees no live data)
      </Text>
    );
  } else if (state.notice) {
    line = <Text wrap="truncate">{state.notice}</Text>;
  } else if (state.connection.state === 'reconnecting') {
    line = (
      <Text color="yellow" wrap="truncate">
        {state.connection.reason}
      </Text>
    );
  } else {
    line = <Text> </Text>;
  }
  return (
    <>
      {line}
      <Text dimColor wrap="truncate">
        {hints(state)}
      </Text>
    </>
  );
}
