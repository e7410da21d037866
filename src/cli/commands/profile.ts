// leakscope profile: the allocation stacks of a process as a pprof heap
// profile (gzipped profile.proto), for `go tool pprof`, -diff_base and
// Pyroscope.
import { observe, withConnection } from '../../conn/attach.js';
import { parsePid, whileAlive } from '../../conn/target.js';
import { LeakscopeError } from '../../errors.js';
import { pprofProfile } from '../../export/pprof.js';
import { formatBytes } from '../../format.js';
import { writeFileOrFail } from './snapshot.js';

export interface ProfileOptions {
  readonly out: string;
}

export async function profileCommand(pidText: string, options: ProfileOptions): Promise<number> {
  const pid = parsePid(pidText);
  const observation = await whileAlive(pid, 'taking its heap profile', withConnection(pid, (c) => observe(c, { stacks: 0, limit: 0 })));
  const heap = observation.heap;
  if (!heap) {
    const why =
      observation.agent.mode === 'proc'
        ? 'it has no leakscope agent (start it with leakscope run, or let snapshot load the agent)'
        : 'its agent takes no stacks (LEAKSCOPE_STACKS=off, or an agent older than stacks)';
    throw new LeakscopeError(`pid ${pid} has no allocation stacks: ${why}`);
  }
  const takenAt = new Date(observation.taken_at);
  const firstMs = observation.history[0]?.t_ms ?? takenAt.getTime();
  const bytes = pprofProfile(heap, {
    takenAt,
    durationMs: takenAt.getTime() - firstMs,
    labels: { pid: String(pid) },
  });
  await writeFileOrFail(options.out, bytes);
  const live = heap.stacks.reduce((sum, s) => sum + s.live_bytes, 0);
  const top = heap.stacks[0];
  process.stdout.write(
    `wrote ${options.out}: ${heap.stacks.length} stacks, ${formatBytes(live)} in use` +
      (top ? `; most in use: ${top.site} (${formatBytes(top.live_bytes)})` : '') +
      `\n  go tool pprof -top ${options.out}\n`,
  );
  for (const note of heap.notes) process.stdout.write(`note: ${note}\n`);
  return 0;
}
