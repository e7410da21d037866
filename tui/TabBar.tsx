// The view tabs with their counts, and on the right how the data arrives:
// live, paused, reconnecting, exited, or which frame of a recording.
import { Box, Text } from 'ink';
import { formatCount } from '../src/format.js';
import type { Snapshot } from '../src/model/snapshot.js';
import { type ConsoleState, VIEW_TITLES, VIEWS, type ViewName } from './state.js';

export interface TabBarProps {
  readonly state: ConsoleState;
  readonly snapshot: Snapshot | null;
}

function count(view: ViewName, s: Snapshot | null): string {
  if (!s) return '';
  switch (view) {
    case 'findings':
      return ` ${s.findings.length}`;
    case 'tasks':
      return s.tasks.tracked ? ` ${formatCount(s.tasks.live)}` : '';
    case 'threads':
      return ` ${s.threads.length}`;
    case 'heap':
      return '';
  }
}

function Status({ state }: { readonly state: ConsoleState }) {
  const c = state.connection;
  switch (c.state) {
    case 'recording': {
      const at = state.frames[state.frameIndex]?.taken_at.replace('T', ' ').replace(/\.\d+Z$/, 'Z') ?? '';
      return (
        <Text color="magenta">
          replay {state.frameIndex + 1}/{state.frames.length} {at}
        </Text>
      );
    }
    case 'connecting':
      return <Text color="yellow">connecting…</Text>;
    case 'connected':
      return state.paused ? <Text color="yellow">paused</Text> : <Text color="green">● live{c.via === 'proc' ? ' (/proc)' : ''}</Text>;
    case 'reconnecting':
      return <Text color="yellow">agent lost; retry {c.attempt} in {Math.round(c.retryInMs / 100) / 10} s</Text>;
    case 'exited':
      return <Text color="red">{c.detail}</Text>;
  }
}

export function TabBar({ state, snapshot }: TabBarProps) {
  return (
    <Box justifyContent="space-between">
      <Text wrap="truncate">
        {VIEWS.map((view, i) => (
          <Text key={view} inverse={view === state.view} bold={view === state.view}>
            {` ${i + 1} ${VIEW_TITLES[view]}${count(view, snapshot)} `}
          </Text>
        ))}
      </Text>
      <Status state={state} />
    </Box>
  );
}
