// Findings: one row each (severity, id, summary); the selected one in full
// below — the measured sentence and what would give the memory back.
import { Box, Text } from 'ink';
import { Clip } from './Clip.js';
import type { Severity, Snapshot } from '../src/model/snapshot.js';
import { ListRows } from './ListRows.js';
import { fitColumns, tableHeader, tableRow } from './columns.js';

export interface FindingsViewProps {
  readonly snapshot: Snapshot;
  readonly cursor: number;
  readonly width: number;
  readonly height: number;
}

const SEVERITY_COLOR: Readonly<Record<Severity, string>> = { error: 'red', warn: 'yellow', info: 'blue' };

export function FindingsView({ snapshot: s, cursor, width, height }: FindingsViewProps) {
  const columns = fitColumns(
    [
      { title: 'severity', width: 9 },
      { title: 'finding', width: 20 },
      { title: 'summary', width: 20, flex: true },
    ],
    width,
  );
  const listRows = Math.max(2, Math.min(s.findings.length, Math.floor(height / 2) - 2));
  const selected = s.findings[cursor];
  const pending = s.pending_checks.map((p) => `${p.id} (${p.reason})`).join('; ');
  return (
    <Clip height={height}>
      <ListRows
        header={tableHeader(columns)}
        rowAt={(i) => {
          const f = s.findings[i];
          return f ? tableRow([f.severity.toUpperCase(), f.id, f.summary], columns) : null;
        }}
        total={s.findings.length}
        cursor={cursor}
        rows={listRows}
        width={width}
        noun="findings"
        empty={s.agent.mode === 'proc' ? 'No findings: without the agent only /proc is visible.' : 'No findings: nothing leaks or retains memory past the thresholds.'}
      />
      {selected ? (
        <Box flexDirection="column" marginTop={1}>
          <Text wrap="truncate">
            <Text color={SEVERITY_COLOR[selected.severity]} bold>
              {selected.severity.toUpperCase()} {selected.id}
            </Text>
            <Text dimColor> · {selected.subject.kind} {selected.subject.label}</Text>
          </Text>
          <Text>{selected.message}</Text>
          <Text color="green">→ {selected.remedy}</Text>
        </Box>
      ) : null}
      {pending ? (
        <Box marginTop={1}>
          <Text dimColor wrap="truncate">
            not decided yet: {pending}
          </Text>
        </Box>
      ) : null}
    </Clip>
  );
}
