// leakscope reclaim: run the allocator's own give-back call inside the
// target and measure RSS before and after.
import { reclaim, withConnection } from '../../conn/attach.js';
import { parsePid, whileAlive } from '../../conn/target.js';
import { formatBytes } from '../../format.js';
import type { ReclaimResult } from '../../model/agent-facts.js';

export function describeReclaim(pid: number, r: ReclaimResult): string {
  if (!r.performed) return `${r.allocator} in pid ${pid} offers no reclaim call; RSS stays ${formatBytes(r.before_rss_bytes)}`;
  const drop = r.before_rss_bytes - r.after_rss_bytes;
  return (
    `${r.action} in pid ${pid}: RSS ${formatBytes(r.before_rss_bytes)} → ${formatBytes(r.after_rss_bytes)} ` +
    `(${drop >= 0 ? '−' : '+'}${formatBytes(Math.abs(drop))}) in ${r.duration_ms} ms`
  );
}

export async function reclaimCommand(pidText: string, options: { json: boolean }): Promise<number> {
  const pid = parsePid(pidText);
  const result = await whileAlive(pid, 'running its reclaim', withConnection(pid, reclaim));
  process.stdout.write(options.json ? `${JSON.stringify({ pid, ...result }, null, 2)}\n` : `${describeReclaim(pid, result)}\n`);
  return 0;
}
