// `?`: every key the console knows.
import { Text } from 'ink';
import { Clip } from './Clip.js';

export interface HelpViewProps {
  readonly height: number;
  readonly replay: boolean;
}

const KEYS: readonly (readonly [string, string])[] = [
  ['1 2 3 4, Tab', 'Findings, Tasks, Threads, Heap (Shift+Tab: back)'],
  ['↑ ↓ j k, PgUp PgDn, Home End', 'move in a list'],
  ['/', 'Tasks: filter by name, spawn site or kind (Enter keeps it, Esc drops it)'],
  ['g', 'Tasks: group by spawn site; Enter on a site lists its tasks'],
  ['o', 'Tasks: next order (idle, age, polls, busy, allocated, live bytes, id)'],
  ['Enter', "Tasks: a task's details and its site's poll times; Heap: open or close a row's callers in the allocation tree; Findings: to the stacks a finding names"],
  ['Esc', 'back: close details, leave a site, clear the filter'],
  ['r', "reclaim: run the allocator's trim/purge/collect and show the RSS it gave back"],
  ['space', 'pause or resume refreshing'],
  ['s', 'save the snapshot on screen as JSON'],
  ['?', 'this help'],
  ['q', 'quit'],
];

export function HelpView({ height, replay }: HelpViewProps) {
  const keys: readonly (readonly [string, string])[] = replay ? [['← →', 'step through the recording'], ...KEYS] : KEYS;
  return (
    <Clip height={height}>
      <Text bold>Keys</Text>
      {keys.map(([key, what]) => (
        <Text key={key} wrap="truncate">
          <Text color="cyan">{key.padEnd(30)}</Text>
          {what}
        </Text>
      ))}
    </Clip>
  );
}
