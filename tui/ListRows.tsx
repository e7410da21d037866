// A screenful of table rows with the cursor's row highlighted, under a
// column header, above a "rows x–y of N" line. Rows not loaded yet (a page
// the agent is still fetching) show as dots; a list the agent has not
// answered yet says so in place of the position.
import { Box, Text } from 'ink';
import { formatCount } from '../src/format.js';
import { pageTop } from './state.js';

export interface ListRowsProps {
  readonly header: string;
  /** Row `index` (absolute), or null when that row is not loaded. */
  readonly rowAt: (index: number) => string | null;
  readonly total: number;
  readonly cursor: number;
  readonly rows: number;
  readonly width: number;
  readonly noun: string;
  readonly empty: string;
  /** Said in place of the position while the list is provisional. */
  readonly pending?: string | null;
}

export function ListRows({ header, rowAt, total, cursor, rows, width, noun, empty, pending = null }: ListRowsProps) {
  const top = pageTop(cursor, rows);
  const end = Math.min(total, top + rows);
  const lines = [];
  for (let index = top; index < end; index++) {
    const text = rowAt(index) ?? '…';
    const selected = index === cursor;
    lines.push(
      <Text key={index} inverse={selected} wrap="truncate">
        {selected ? text.padEnd(width).slice(0, width) : text}
      </Text>,
    );
  }
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate">
        {header}
      </Text>
      {total === 0 ? pending ? null : <Text dimColor>{empty}</Text> : lines}
      {pending ? (
        <Text dimColor wrap="truncate">
          {pending}
        </Text>
      ) : total > rows ? (
        <Text dimColor>
          {noun} {formatCount(top + 1)}–{formatCount(end)} of {formatCount(total)}
        </Text>
      ) : null}
    </Box>
  );
}
