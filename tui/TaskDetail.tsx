// One task in full, and the poll-time distribution of its spawn site (the
// agent keeps poll times per site, not per task).
import { Box, Text } from 'ink';
import { formatBytes, formatCount, formatDuration } from '../src/format.js';
import type { TaskItem, TaskSite } from '../src/model/snapshot.js';

export interface TaskDetailProps {
  readonly task: TaskItem;
  readonly site: TaskSite | null;
  readonly width: number;
}

/** Bucket k of a poll histogram counts polls of [2^k, 2^(k+1)) µs. */
export function bucketLabel(k: number): string {
  const us = 2 ** k;
  if (us < 1000) return `${us} µs`;
  if (us < 1_000_000) return `${Math.round(us / 1000)} ms`;
  return `${Math.round(us / 1_000_000)} s`;
}

function Histogram({ site, width }: { readonly site: TaskSite; readonly width: number }) {
  const buckets = site.poll_histogram;
  const first = buckets.findIndex((n) => n > 0);
  if (first < 0) return <Text dimColor>No polls yet at {site.site}.</Text>;
  let last = buckets.length - 1;
  while (buckets[last] === 0) last--;
  const most = Math.max(...buckets);
  const room = Math.max(10, width - 24);
  const rows = [];
  for (let k = first; k <= last; k++) {
    const n = buckets[k]!;
    const label = k === buckets.length - 1 ? `≥ ${bucketLabel(k)}` : `< ${bucketLabel(k + 1)}`;
    rows.push(
      <Text key={k} wrap="truncate">
        {label.padStart(9)} <Text color="cyan">{'█'.repeat(n === 0 ? 0 : Math.max(1, Math.round((n / most) * room)))}</Text> {formatCount(n)}
      </Text>,
    );
  }
  return (
    <Box flexDirection="column">
      <Text bold>
        Poll times at {site.site} ({formatCount(site.polls)} polls of {formatCount(site.spawned)} tasks)
      </Text>
      {rows}
    </Box>
  );
}

export function TaskDetail({ task: t, site, width }: TaskDetailProps) {
  const fields: [string, string][] = [
    ['task', `${t.id} ${t.name || ''}`.trim()],
    ['kind', t.kind],
    ['spawn site', t.site],
    ['parent', t.parent_id ? String(t.parent_id) : '-'],
    ['state', t.state === 'idle' ? `idle for ${formatDuration(t.idle_ms)}` : t.state === 'running' ? `running for ${formatDuration(t.running_for_ms)}` : t.state],
    ['age', formatDuration(t.age_ms)],
    ['polls', `${formatCount(t.polls)}, busy ${formatDuration(t.busy_ms)}, longest ${formatDuration(t.longest_poll_ms)}`],
    ['wakes', `${formatCount(t.wakes)}${t.last_wake_ms_ago === null ? '' : `, last ${formatDuration(t.last_wake_ms_ago)} ago`}`],
    ['wakers', t.wakers === null ? 'not reported by this runtime' : t.wakers === 0 ? '0 — nothing can wake it' : String(t.wakers)],
    ['memory', `${formatBytes(t.allocated_bytes)} allocated while polled, ${formatBytes(t.live_bytes)} still live`],
  ];
  return (
    <Box flexDirection="column">
      {fields.map(([name, value]) => (
        <Text key={name} wrap="truncate">
          <Text dimColor>{name.padEnd(11)}</Text>
          {value}
        </Text>
      ))}
      <Box marginTop={1}>{site ? <Histogram site={site} width={width} /> : <Text dimColor>The site is not in this snapshot's site list.</Text>}</Box>
    </Box>
  );
}
