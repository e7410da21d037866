// The memory cgroup a process is charged to, and the limit that would get it
// OOM-killed: cgroup v2's memory.* files, or v1's memory controller where the
// host mounts that (a hybrid host has both; the one with the memory
// controller counts). Read beside every snapshot, in every mode.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { CgroupMemory } from '../model/snapshot.js';
import { readProcFile } from './target.js';

/** v1 says "no limit" with the largest page-aligned 63-bit number. */
const V1_UNLIMITED = 2 ** 62;

export interface Mount {
  readonly version: 1 | 2;
  /** Where the hierarchy is mounted here. */
  readonly point: string;
  /** Which cgroup of the hierarchy the mount shows at `point` ("/" unless a container bind-mounted its own). */
  readonly root: string;
}

/** The cgroup hierarchies mounted here that can account memory: v1's memory controller, and v2. */
export function memoryMounts(mountinfo: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    // proc(5): id parent major:minor root point options [optional…] - type source super-options
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [type, , superOptions = ''] = right.split(' ');
    const root = unescapeMount(fields[3] ?? '');
    const point = unescapeMount(fields[4] ?? '');
    if (type === 'cgroup2') mounts.push({ version: 2, point, root });
    else if (type === 'cgroup' && superOptions.split(',').includes('memory')) mounts.push({ version: 1, point, root });
  }
  return mounts;
}

function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** The process's cgroup path in v2 ("0::/path") and in v1's memory hierarchy ("4:memory:/path"). */
export function cgroupPaths(procCgroup: string): { v1: string | null; v2: string | null } {
  let v1: string | null = null;
  let v2: string | null = null;
  for (const line of procCgroup.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') v2 = m[3]!;
    else if (m[2]!.split(',').includes('memory')) v1 = m[3]!;
  }
  return { v1, v2 };
}

/** The directory of `path` under `mount`, or null when the mount does not show it. */
function directoryOf(mount: Mount, path: string): string | null {
  if (mount.root === '/') return join(mount.point, path);
  if (path === mount.root || path.startsWith(`${mount.root}/`)) return join(mount.point, path.slice(mount.root.length));
  return null;
}

async function readText(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return null;
  }
}

async function readNumber(file: string): Promise<number | null> {
  const text = (await readText(file))?.trim();
  if (text === undefined) return null;
  if (text === 'max') return Infinity;
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
}

export function parseKeyedCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.split(' ');
    if (key && value !== undefined && /^\d+$/.test(value)) counts.set(key, Number(value));
  }
  return counts;
}

/** The tightest limit on `leaf` or on a cgroup above it (up to the mount's top), and where it is set. */
async function tightestLimit(mount: Mount, leaf: string, file: string, unlimitedFrom: number): Promise<{ bytes: number; path: string } | null> {
  let tightest: { bytes: number; path: string } | null = null;
  for (let path = leaf; ; path = path.slice(0, path.lastIndexOf('/')) || '/') {
    const directory = directoryOf(mount, path);
    if (directory === null) break;
    const limit = await readNumber(join(directory, file));
    if (limit !== null && limit < unlimitedFrom && (tightest === null || limit < tightest.bytes)) tightest = { bytes: limit, path };
    if (path === '/' || path === mount.root) break;
  }
  return tightest;
}

async function readV2(mount: Mount, path: string): Promise<CgroupMemory | null> {
  const directory = directoryOf(mount, path);
  if (directory === null) return null;
  const usage = await readNumber(join(directory, 'memory.current'));
  const stat = await readText(join(directory, 'memory.stat'));
  if (usage === null || stat === null) return null; // the memory controller is not on for this subtree
  const counts = parseKeyedCounts(stat);
  const events = parseKeyedCounts((await readText(join(directory, 'memory.events'))) ?? '');
  const limit = await tightestLimit(mount, path, 'memory.max', Infinity);
  const high = await readNumber(join(directory, 'memory.high'));
  // "kernel" is there from Linux 5.18; before, its parts.
  const kernel = counts.get('kernel') ?? sumOf(counts, ['kernel_stack', 'pagetables', 'percpu', 'sock', 'slab']);
  return {
    version: 2,
    path,
    limit_bytes: limit?.bytes ?? null,
    limit_path: limit?.path ?? null,
    high_bytes: high === null || high === Infinity ? null : high,
    usage_bytes: usage,
    working_set_bytes: Math.max(0, usage - (counts.get('inactive_file') ?? 0)),
    anon_bytes: counts.get('anon') ?? 0,
    file_bytes: counts.get('file') ?? 0,
    kernel_bytes: kernel,
    oom_kills: events.get('oom_kill') ?? null,
  };
}

async function readV1(mount: Mount, path: string): Promise<CgroupMemory | null> {
  const directory = directoryOf(mount, path);
  if (directory === null) return null;
  const usage = await readNumber(join(directory, 'memory.usage_in_bytes'));
  const stat = await readText(join(directory, 'memory.stat'));
  if (usage === null || stat === null) return null;
  const counts = parseKeyedCounts(stat);
  const limit = await tightestLimit(mount, path, 'memory.limit_in_bytes', V1_UNLIMITED);
  // The kernel's own view of the limit over the hierarchy, where the walk up
  // cannot see (a container shown only its own cgroup).
  const hierarchical = counts.get('hierarchical_memory_limit');
  const limitBytes = hierarchical !== undefined && hierarchical < V1_UNLIMITED && (limit === null || hierarchical < limit.bytes) ? hierarchical : limit?.bytes ?? null;
  const oom = parseKeyedCounts((await readText(join(directory, 'memory.oom_control'))) ?? '');
  return {
    version: 1,
    path,
    limit_bytes: limitBytes,
    limit_path: limit !== null && limit.bytes === limitBytes ? limit.path : null,
    high_bytes: null,
    usage_bytes: usage,
    working_set_bytes: Math.max(0, usage - (counts.get('total_inactive_file') ?? counts.get('inactive_file') ?? 0)),
    anon_bytes: counts.get('total_rss') ?? counts.get('rss') ?? 0,
    file_bytes: counts.get('total_cache') ?? counts.get('cache') ?? 0,
    kernel_bytes: await readNumber(join(directory, 'memory.kmem.usage_in_bytes')),
    oom_kills: oom.get('oom_kill') ?? null,
  };
}

function sumOf(counts: Map<string, number>, keys: readonly string[]): number | null {
  const present = keys.filter((key) => counts.has(key));
  return present.length === 0 ? null : present.reduce((sum, key) => sum + counts.get(key)!, 0);
}

/** The memory cgroup of `pid`; null where no hierarchy here accounts its memory. */
export async function readCgroupMemory(pid: number): Promise<CgroupMemory | null> {
  const [procCgroup, mountinfo] = await Promise.all([readProcFile(pid, 'cgroup'), readProcFile(process.pid, 'mountinfo')]);
  return cgroupMemoryIn(memoryMounts(mountinfo), cgroupPaths(procCgroup));
}

/** The memory of the cgroup at `paths` in the first of `mounts` that accounts it: v1's memory controller, where mounted, charges the process. */
export async function cgroupMemoryIn(mounts: readonly Mount[], paths: { v1: string | null; v2: string | null }): Promise<CgroupMemory | null> {
  for (const mount of [...mounts].sort((a, b) => a.version - b.version)) {
    const path = mount.version === 1 ? paths.v1 : paths.v2;
    if (path === null) continue;
    const memory = mount.version === 1 ? await readV1(mount, path) : await readV2(mount, path);
    if (memory) return memory;
  }
  return null;
}
