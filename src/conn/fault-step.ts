// A hook for the fault suite (test/faults.test.ts, docs/reliability.md):
// with LEAKSCOPE_FAULT_STEP=NAME in its environment, the CLI says so on
// stderr and stops itself (SIGSTOP) when it reaches step NAME, so that a
// test can kill the target, or the CLI, exactly there. Unset, a step is one
// environment lookup.
export type FaultStep =
  | 'connected'
  | 'greeted'
  | `requested:${string}`
  | `answered:${string}`
  | 'inspector-open'
  | 'bridge-loaded';

export function faultStep(step: FaultStep): void {
  if (process.env.LEAKSCOPE_FAULT_STEP !== step) return;
  process.stderr.write(`leakscope: fault step ${step}\n`);
  process.kill(process.pid, 'SIGSTOP');
}
