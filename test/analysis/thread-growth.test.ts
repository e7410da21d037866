import test from 'ava';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/detector.js';
import { check } from '../../src/analysis/findings/thread-growth.js';
import { history, observation, thread } from '../helpers/observation.js';

test('fires when threads keep coming, naming their start routine', (t) => {
  const o = observation((d) => {
    d.history = history(12, () => 0, (s) => 3 + s * 4);
    d.threads = Array.from({ length: 40 }, (_, i) => thread({ tid: 200 + i, name: 'w', start_routine: 'handle_conn (svc)' }));
  });
  const result = check(o, DEFAULT_THRESHOLDS);
  if (result.status !== 'found') return t.fail(result.status);
  t.is(result.findings[0]?.value, 44);
  t.regex(result.findings[0]!.message, /40 of the threads run handle_conn \(svc\)/);
});

test('quiet on a bounded pool that grows then shrinks', (t) => {
  const o = observation((d) => {
    d.history = history(12, () => 0, (s) => (s < 6 ? 3 + s * 4 : 3));
  });
  t.is(check(o, DEFAULT_THRESHOLDS).status, 'ok');
});
