// `leakscope run -- node app.js` puts this on NODE_OPTIONS (--require): the
// bridge starts before the program's first line, so every promise, timer
// and span has its site, and libleakscope.so (LD_PRELOAD) counts every
// allocation from the start.
import { isMainThread } from 'node:worker_threads';
import { attach } from './bridge.cjs';

if (isMainThread) {
  // Child processes run without leakscope unless asked, as with LD_PRELOAD.
  if (process.env.LEAKSCOPE_FOLLOW_CHILDREN !== '1' && process.env.NODE_OPTIONS)
    process.env.NODE_OPTIONS = process.env.NODE_OPTIONS.split(/\s+/)
      .filter((option, at, all) => !(option === __filename || (option === '--require' && all[at + 1] === __filename)))
      .join(' ');
  attach({ fromStart: true });
}
