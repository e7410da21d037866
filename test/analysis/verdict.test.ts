import test from 'ava';
import { analyze } from '../../src/analysis/index.js';
import type { Finding } from '../../src/model/snapshot.js';
import { history, MiB, observation, site, tasks } from '../helpers/observation.js';
import { schemaErrors } from '../helpers/schema.js';

const finding = (id: string, severity: Finding['severity']): Finding => ({
  id,
  severity,
  summary: `${id} summary`,
  message: '',
  subject: { kind: 'process', id: '1', label: 'pid 1' },
  value: 1,
  unit: 'count',
  remedy: '',
});

test('a growing heap is live data growing, with the finding it rests on, in the JSON and its schema', (t) => {
  const s = analyze(observation((d) => { d.history = history(70, (s) => 100 * MiB + s * 2 * MiB); }));
  t.like(s.verdict, { cause: 'live-data-growing', confidence: 'high', because: ['heap-growth'], undecided: [] });
  t.regex(s.verdict.summary, /^live data growing — 110\.0 MiB of live heap added in the last 60 s/);
  t.is(schemaErrors(JSON.parse(JSON.stringify(s))), null);
});

test('a ramp that levelled off is steady, and says so with high confidence once every check decided', (t) => {
  const s = analyze(observation((d) => { d.history = history(120, (s) => 4 * MiB + Math.min(s, 10) * 26 * MiB); }));
  t.deepEqual(s.findings.map((f) => f.id), []);
  t.like(s.verdict, { cause: 'steady', confidence: 'high', because: [], undecided: [], summary: 'steady: no leak and no retention found' });
});

test('too early to say: steady so far, low confidence, naming what is undecided and why', (t) => {
  const s = analyze(observation((d) => { d.history = history(11, () => 100 * MiB); }));
  t.like(s.verdict, { cause: 'steady', confidence: 'low' });
  t.deepEqual(s.verdict.undecided, ['heap-growth', 'thread-growth']);
  t.is(s.verdict.summary, 'steady so far: heap-growth, thread-growth not decided yet (needs 19 s more history (has 10 s))');
});

test('leaking tasks outrank the live data they hold; a few idle tasks (info) do not decide', (t) => {
  const leaking = analyze(
    observation((d) => {
      d.history = history(70, (s) => 100 * MiB + s * 2 * MiB);
      d.tasks = tasks([site({ site: 'a.c:1', live: 30, idle: 30, idle_over_threshold: 30, spawned: 30 })]);
    }),
  );
  t.is(leaking.verdict.cause, 'tasks-leaking');
  t.deepEqual(leaking.verdict.because, ['idle-forever']);
  const few = analyze(
    observation((d) => {
      d.history = history(70, () => 100 * MiB);
      d.tasks = tasks([site({ site: 'a.c:1', live: 3, idle: 3, idle_over_threshold: 3, spawned: 3 })]);
    }),
  );
  t.deepEqual(few.findings.map((f) => [f.id, f.severity]), [['idle-forever', 'info']]);
  t.is(few.verdict.cause, 'steady');
});

test('no agent: unknown, whatever /proc shows', (t) => {
  const s = analyze(observation((d) => { d.agent.mode = 'proc'; d.allocator.live_bytes = null; }));
  t.like(s.verdict, { cause: 'unknown', confidence: 'low', summary: 'unknown: no agent, and /proc alone cannot tell a leak' });
});

test('the order of causes, from the findings alone', async (t) => {
  const { verdictOf } = await import('../../src/analysis/verdict.js');
  const { DETECTORS } = await import('../../src/analysis/index.js');
  const v = (...fs: Finding[]) => verdictOf(fs, [], DETECTORS, false);
  t.is(v(finding('arena-fragmentation', 'warn'), finding('thread-growth', 'warn')).cause, 'threads-leaking');
  t.is(v(finding('retention', 'info')).cause, 'allocator-retention');
  t.like(v(finding('never-yielded', 'error')), { cause: 'steady', because: [] });
  t.like(v(finding('sleeping-owner', 'warn'), finding('retention', 'info')), { cause: 'allocator-retention', confidence: 'high', because: ['sleeping-owner', 'retention'] });
  t.like(v(finding('arena-fragmentation', 'warn')), { confidence: 'medium' });
});
