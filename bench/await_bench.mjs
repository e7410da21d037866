// An await-heavy microbenchmark: a chain of async functions awaited a
// million times. MODE: bare | leakscope (the bridge loaded in-process, as
// `leakscope attach` loads it) | async_hooks (a tracker of the kind
// why-is-node-running and wtfnode are built on: every async resource
// recorded at init, forgotten at resolve or destroy).
// Prints {"mode":…,"ms":…,"promises":…}.
import { createHook } from 'node:async_hooks';
import { createRequire } from 'node:module';

const [mode = 'bare', bridge, iterationsText = '1000000'] = process.argv.slice(2);
const ITERATIONS = Number(iterationsText);

if (mode === 'leakscope') createRequire(import.meta.url)(bridge).attach({ fromStart: true });
if (mode === 'async_hooks') {
  const resources = new Map();
  createHook({
    init(asyncId, type, triggerAsyncId) {
      resources.set(asyncId, { type, triggerAsyncId });
    },
    promiseResolve(asyncId) {
      resources.delete(asyncId);
    },
    destroy(asyncId) {
      resources.delete(asyncId);
    },
  }).enable();
}

async function leaf(i) {
  return i;
}
async function middle(i) {
  const a = await leaf(i);
  const b = await leaf(a);
  return a + b;
}
async function run(n) {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += await middle(i);
  return sum;
}

await run(ITERATIONS / 5); // warm up the JIT (and the sampler's rate)
const started = process.hrtime.bigint();
await run(ITERATIONS);
const ms = Number(process.hrtime.bigint() - started) / 1e6;
console.log(JSON.stringify({ mode, ms }));
