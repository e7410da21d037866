// The top three lines: who the target is, how its memory moves (sparklines
// of RSS, live bytes and live tasks), and the verdict with its main finding.
import { Box, Text } from 'ink';
import { headerLive } from '../src/analysis/measured.js';
import { formatBytes, formatCount, formatDuration } from '../src/format.js';
import type { Cause, Snapshot } from '../src/model/snapshot.js';
import { sparkline } from './sparkline.js';

export interface HeaderProps {
  readonly snapshot: Snapshot | null;
  readonly width: number;
}

const VERDICT_COLOR: Readonly<Record<Cause, string>> = {
  'tasks-leaking': 'red',
  'live-data-growing': 'red',
  'threads-leaking': 'red',
  'allocator-retention': 'yellow',
  steady: 'green',
  unknown: 'gray',
};

function uptime(s: Snapshot): string | null {
  if (!s.process.started_at) return null;
  return formatDuration(Math.max(0, Date.parse(s.taken_at) - Date.parse(s.process.started_at)));
}

function agentLabel(s: Snapshot): string {
  if (s.agent.mode === 'proc') return 'no agent (/proc only)';
  return s.agent.counts === 'sampled' ? `agent ${s.agent.mode}, counts sampled` : `agent ${s.agent.mode}`;
}

export function Header({ snapshot: s, width }: HeaderProps) {
  if (!s) {
    return (
      <Box flexDirection="column" height={3}>
        <Text bold>leakscope</Text>
        <Text dimColor>waiting for the first snapshot…</Text>
        <Text> </Text>
      </Box>
    );
  }
  const up = uptime(s);
  const identity = [`pid ${s.pid}`, agentLabel(s), `${s.allocator.name}${s.allocator.version ? ` ${s.allocator.version}` : ''}`, up ? `up ${up}` : null]
    .filter((part): part is string => part !== null)
    .join(' · ');
  const commandRoom = Math.max(8, width - identity.length - 14);
  const command = s.command.length > commandRoom ? `${s.command.slice(0, commandRoom - 1)}…` : s.command;
  const dropped = s.agent.dropped_events + s.tasks.dropped;
  const chart = Math.max(6, Math.floor((width - 60) / 3));
  const live = headerLive(s)?.bytes ?? null;
  const top = s.findings[0];
  // The verdict's own line, then the most severe finding when that is another cause's (never-yielded).
  const aside = top && !s.verdict.because.includes(top.id) ? top : null;
  return (
    <Box flexDirection="column" height={3}>
      <Text wrap="truncate">
        <Text bold>leakscope</Text> {command} <Text dimColor>· {identity}</Text>
      </Text>
      <Text wrap="truncate">
        RSS {formatBytes(s.process.rss_bytes)} <Text color="cyan">{sparkline(s.history.map((h) => h.rss_bytes), chart)}</Text>
        {'  '}live {live === null ? '?' : formatBytes(live)} <Text color="cyan">{sparkline(s.history.map((h) => h.live_bytes), chart)}</Text>
        {'  '}tasks {formatCount(s.tasks.live)} <Text color="cyan">{sparkline(s.history.map((h) => h.tasks_live), chart)}</Text>
        {dropped > 0 ? <Text color="red" bold>{`  dropped ${formatCount(dropped)} events`}</Text> : null}
      </Text>
      <Text wrap="truncate">
        <Text color={VERDICT_COLOR[s.verdict.cause]} bold>
          {s.verdict.summary}
        </Text>
        {aside ? <Text dimColor> · {aside.severity} {aside.id}</Text> : null}
      </Text>
    </Box>
  );
}
