// `leakscope run -- node app.js` puts this on NODE_OPTIONS (--require): the
// bridge starts before the program's first line, so every promise, timer
// and span has its site, and libleakscope.so (LD_PRELOAD) sees every
// allocation from the start. It runs in every worker thread too.
import { isMainThread } from 'node:worker_threads';
import { attach, attachWorker } from './bridge.cjs';

if (isMainThread) {
  // Child processes run without leakscope unless asked, as with LD_PRELOAD.
  if (process.env.LEAKSCOPE_FOLLOW_CHILDREN !== '1' && process.env.NODE_OPTIONS)
    process.env.NODE_OPTIONS = process.env.NODE_OPTIONS.split(/\s+/)
      .filter((option, at, all) => !(option === __filename || (option === '--require' && all[at + 1] === __filename)))
      .join(' ');
  attach({ fromStart: true });
} else {
  // Each worker's own loop, promises and timers, from its first line.
  try {
    attachWorker({ fromStart: true });
  } catch {
    // A worker of a program whose main thread has no agent (it failed to start): nothing to join.
  }
}
