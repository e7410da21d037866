import test from 'ava';
import { formatBytes, formatDuration, parseDuration } from '../../src/format.js';

test('durations parse the way the flags document them', (t) => {
  t.is(parseDuration('30s'), 30_000);
  t.is(parseDuration('500ms'), 500);
  t.is(parseDuration('1.5m'), 90_000);
  t.is(parseDuration('2h'), 7_200_000);
  t.is(parseDuration('45'), 45_000);
  t.is(parseDuration('soon'), null);
  t.is(parseDuration('-3s'), null);
});

test('sizes and durations read like a person writes them', (t) => {
  t.is(formatBytes(512), '512 B');
  t.is(formatBytes(128 * 1024 * 1024), '128.0 MiB');
  t.is(formatDuration(42_000), '42 s');
  t.is(formatDuration(600_000), '10 min');
  t.is(formatDuration(1_200), '1.2 s');
  t.is(formatDuration(2_000), '2 s');
});
