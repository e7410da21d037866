import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check, NEVER_YIELDED_MS } from '../../src/analysis/findings/never-yielded.js';
import { observation, site, tasks } from '../helpers/observation.js';

test('a poll of a second or more is a warning; one still running is an error', (t) => {
  const past = site({ site: 'report.c:3', polls: 1, longest_poll_ms: 1200 });
  const now = site({ site: 'parse.c:9', live: 1, running: 1, polls: 4, longest_poll_ms: 2500, running_longest_ms: 2500 });
  const quick = site({ site: 'fast.c:1', polls: 10_000, longest_poll_ms: NEVER_YIELDED_MS - 1 });
  const result = check(observation((d) => (d.tasks = tasks([past, now, quick]))), DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.deepEqual(
    result.findings.map((f) => [f.subject.label, f.severity, f.value]),
    [
      ['report.c:3', 'warn', 1200],
      ['parse.c:9', 'error', 2500],
    ],
  );
  t.is(result.findings[0]?.summary, 'a poll of a task spawned at report.c:3 ran for 1.2 s without yielding');
  t.regex(result.findings[1]!.message, /still running/);
});

test('a slow poll is about the last minute: one at start-up is not reported for the life of the process', async (t) => {
  const { check: neverYielded } = await import('../../src/analysis/findings/never-yielded.js');
  const { DEFAULT_THRESHOLDS: thresholds } = await import('../../src/analysis/detector.js');
  const { observation: build, site: at, tasks: list } = await import('../helpers/observation.js');
  const long = (recent: number | null, ago: number | null) =>
    build((d) => {
      d.tasks = list([at({ site: 'loop.c:7', longest_poll_ms: 1800, polls: 500, recent_slow_poll_ms: recent, recent_slow_poll_ms_ago: ago })]);
    });
  t.deepEqual(neverYielded(long(null, null), thresholds), { status: 'ok' }, 'the 1.8 s poll was over a minute ago');
  const recent = neverYielded(long(1800, 12_000), thresholds);
  if (recent.status !== 'found') return t.fail(recent.status);
  t.is(recent.findings[0]?.summary, 'a poll of a task spawned at loop.c:7 ran for 1.8 s without yielding, 12 s ago');
  t.is(recent.findings[0]?.severity, 'warn');
});
