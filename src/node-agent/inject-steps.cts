// The inspector steps that put the bridge into a JS thread, over whichever
// session reaches it: `leakscope attach` uses them on the main thread over
// the inspector's WebSocket (src/conn/node-inject.ts); the main thread's
// bridge uses them on each worker over its own in-process session
// (workers.cts).

/** Sends one inspector command to the thread and resolves with its result. */
export type InspectorSend = <T>(method: string, params: Record<string, unknown>) => Promise<T>;

export interface EvaluateReply {
  result?: { type: string; value?: unknown; objectId?: string };
  exceptionDetails?: { text?: string; exception?: { description?: string } };
}

/** An expression that loads the bridge at `bridgePath` in the target thread, CommonJS or ESM, and calls `call` on it. */
export function bridgeExpression(bridgePath: string, call: string): string {
  const path = JSON.stringify(bridgePath);
  return `(() => {
    const load = process.getBuiltinModule ? process.getBuiltinModule('module').createRequire(${path})
      : process.mainModule ? process.mainModule.require('module').createRequire(${path}) : null;
    if (!load) return { error: 'no-loader', version: process.version };
    return load(${path}).${call};
  })()`;
}

/** The value of an evaluation; an exception inside the target becomes `fail(text)`. */
export function evaluated<T>(reply: EvaluateReply, what: string, fail: (message: string) => Error): T {
  if (reply.exceptionDetails) {
    const detail = reply.exceptionDetails.exception?.description?.split('\n')[0] ?? reply.exceptionDetails.text ?? 'an exception';
    throw fail(`${what} failed inside the target: ${detail}`);
  }
  return reply.result?.value as T;
}

/**
 * Objects on the thread's heap from before the hooks (promises, timers),
 * found by their prototype: the bridge's `adopt` (called with the array as
 * `this`) counts the ones still pending.
 */
export async function adoptFromHeap(
  send: InspectorSend,
  prototypeExpression: string,
  adoptExpression: string,
  fail: (message: string) => Error,
): Promise<number> {
  const group = 'leakscope-attach';
  const prototype = await send<EvaluateReply>('Runtime.evaluate', { expression: prototypeExpression, objectGroup: group });
  const prototypeId = prototype.result?.objectId;
  if (!prototypeId) return 0;
  try {
    const found = await send<{ objects: { objectId?: string } }>('Runtime.queryObjects', { prototypeObjectId: prototypeId, objectGroup: group });
    if (!found.objects.objectId) return 0;
    const adopted = await send<EvaluateReply>('Runtime.callFunctionOn', {
      objectId: found.objects.objectId,
      functionDeclaration: `function () { return ${adoptExpression}; }`,
      returnByValue: true,
    });
    return evaluated<number>(adopted, 'counting the heap\'s objects', fail) ?? 0;
  } finally {
    await send('Runtime.releaseObjectGroup', { objectGroup: group }).catch(() => undefined);
  }
}

/** Adopts the thread's pending promises and live timers from before the bridge (`bridgePath` loaded there already). */
export async function adoptExistingTasks(send: InspectorSend, bridgePath: string, fail: (message: string) => Error): Promise<void> {
  await adoptFromHeap(send, 'Promise.prototype', bridgeExpression(bridgePath, 'adoptExisting(this)'), fail);
  await adoptFromHeap(send, bridgeExpression(bridgePath, 'timeoutPrototype()'), bridgeExpression(bridgePath, 'adoptTimers(this)'), fail);
}
