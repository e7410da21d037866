// A memory cgroup of the test's own with a limit, made under the test
// runner's cgroup (v1's memory controller, or v2 where the memory controller
// is delegated to it), and removed after the test.
import { promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { cgroupPaths, memoryMounts } from '../../src/conn/cgroup.js';
import { safeKill } from './process.js';

export interface TestCgroup {
  /** The cgroup's path in its hierarchy, as /proc/<pid>/cgroup will name it. */
  readonly path: string;
  readonly version: 1 | 2;
  add(pid: number): Promise<void>;
}

let made = 0;

export async function memoryCgroup(t: ExecutionContext, limitBytes: number): Promise<TestCgroup> {
  const own = cgroupPaths(readFileSync('/proc/self/cgroup', 'utf8'));
  const tried: string[] = [];
  for (const mount of memoryMounts(readFileSync('/proc/self/mountinfo', 'utf8'))) {
    const ownPath = mount.version === 1 ? own.v1 : own.v2;
    if (ownPath === null || mount.root !== '/') continue;
    const path = join(ownPath, `leakscope-test-${process.pid}-${++made}`);
    const directory = join(mount.point, path);
    const limitFile = mount.version === 1 ? 'memory.limit_in_bytes' : 'memory.max';
    try {
      await fs.mkdir(directory);
    } catch (error) {
      tried.push(`${directory}: ${(error as Error).message}`);
      continue;
    }
    try {
      await fs.writeFile(join(directory, limitFile), String(limitBytes));
    } catch (error) {
      tried.push(`${join(directory, limitFile)}: ${(error as Error).message}`);
      await fs.rmdir(directory).catch(() => undefined);
      continue;
    }
    t.teardown(async () => {
      // Only the test's processes are in it; a cgroup goes once they are reaped.
      for (let attempt = 0; attempt < 50; attempt++) {
        const procs = await fs.readFile(join(directory, 'cgroup.procs'), 'utf8').catch(() => '');
        for (const pid of procs.split('\n').filter(Boolean)) safeKill(Number(pid), 'SIGKILL');
        try {
          await fs.rmdir(directory);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    });
    return { path, version: mount.version, add: (pid) => fs.writeFile(join(directory, 'cgroup.procs'), String(pid)) };
  }
  throw new Error(`no memory cgroup with a limit could be made here: ${tried.join('; ') || 'no memory hierarchy is mounted'}`);
}
