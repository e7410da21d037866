// Where a running program's calls to an imported function go: the value of
// its executable's GOT entry for it, read from /proc/<pid>/mem, and the
// mapping that value falls in. Shows from outside whether leakscope's heap
// hooks are in (native/src/core/got_hooks.cc) or out again.
import { execFile } from 'node:child_process';
import { open, readFile, readlink } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The file (e.g. …/leakscope.node or …/libc.so.6) that `symbol`'s JUMP_SLOT entry in `pid`'s executable points into. */
export async function gotTarget(pid: number, symbol: string): Promise<string> {
  const exe = await readlink(`/proc/${pid}/exe`);
  const { stdout: header } = await run('readelf', ['-hW', exe]);
  const { stdout: relocations } = await run('readelf', ['-rW', exe], { maxBuffer: 256 << 20 });
  const line = relocations.split('\n').find((l) => /R_X86_64_JUMP_SLOT/.test(l) && new RegExp(`\\s${symbol}@`).test(l));
  if (!line) throw new Error(`${exe} has no JUMP_SLOT entry for ${symbol}`);
  const maps = (await readFile(`/proc/${pid}/maps`, 'utf8')).trim().split('\n').map((l) => {
    const [range, , offset, , , path] = l.split(/\s+/);
    const [start, end] = range!.split('-').map((x) => BigInt(`0x${x}`));
    return { start: start!, end: end!, offset: BigInt(`0x${offset}`), path: path ?? '' };
  });
  // A position-independent executable is relocated by its first mapping's address.
  const base = /Type:\s+DYN/.test(header) ? maps.find((m) => m.path === exe && m.offset === 0n)!.start : 0n;
  const entry = base + BigInt(`0x${line.trim().split(/\s+/)[0]}`);
  const memory = await open(`/proc/${pid}/mem`, 'r');
  try {
    const value = Buffer.alloc(8);
    await memory.read(value, 0, 8, Number(entry));
    const target = value.readBigUInt64LE();
    return maps.find((m) => target >= m.start && target < m.end)?.path ?? `unmapped 0x${target.toString(16)}`;
  } finally {
    await memory.close();
  }
}
