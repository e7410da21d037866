// Finding out about a pid before we talk to it: does it exist, may we look
// at it, whose is it, where would its agent's socket be.
import { promises as fs } from 'node:fs';
import { LeakscopeError } from '../errors.js';

export function parsePid(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) <= 0 || Number(text) > 4194304)
    throw new LeakscopeError(`'${text}' is not a process id (expected a positive integer)`);
  return Number(text);
}

export interface TargetIdentity {
  readonly pid: number;
  readonly uid: number;
  readonly name: string;
  /** The pid as the process itself sees it (its own pid namespace): what its agent names its socket by. */
  readonly ownPid: number;
  /** It lives in another mount namespace (a container, unshare -m): its files are reached through /proc/PID/root. */
  readonly otherMountNamespace: boolean;
}

function describeFsError(error: unknown, pid: number, what: string): LeakscopeError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ESRCH') return new LeakscopeError(`no process with pid ${pid} (it may have exited)`);
  if (code === 'EACCES' || code === 'EPERM')
    return new LeakscopeError(`permission denied reading ${what} of pid ${pid}: run leakscope as the process's user or as root`);
  return new LeakscopeError(`cannot read ${what} of pid ${pid}: ${(error as Error).message}`);
}

export async function readProcFile(pid: number, file: string): Promise<string> {
  try {
    return await fs.readFile(`/proc/${pid}/${file}`, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if ((code === 'EACCES' || code === 'EPERM') && process.geteuid?.() === 0) throw new LeakscopeError(await whyRootIsDenied(pid, `/proc/${pid}/${file}`));
    throw describeFsError(error, pid, `/proc/${pid}/${file}`);
  }
}

/**
 * Root was refused a file that needs ptrace-read access (maps, mem,
 * environ): say which check of the kernel's it is likely to be, from what we
 * can see (proc(5), ptrace(2) "Ptrace access mode checking").
 */
async function whyRootIsDenied(pid: number, path: string): Promise<string> {
  const name = (await fs.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
  const denied = `permission denied reading ${path} of pid ${pid} (${name}), even as root`;
  const yama = (await fs.readFile('/proc/sys/kernel/yama/ptrace_scope', 'utf8').catch(() => '')).trim();
  if (yama === '3') return `${denied}: Yama's ptrace_scope is 3, so no process may inspect another on this machine (it stays so until reboot)`;
  const [ours, theirs] = await Promise.all([fs.readlink('/proc/self/ns/user').catch(() => null), fs.readlink(`/proc/${pid}/ns/user`).catch(() => null)]);
  if (ours && theirs && ours !== theirs) return `${denied}: it lives in another user namespace, where this root is not its root; run leakscope inside that namespace`;
  return (
    `${denied}: the kernel refuses this process's ptrace-read access to it (it is not dumpable, it was started with more privileges than ` +
    `leakscope has, or a security module such as AppArmor or SELinux forbids it); leakscope can read only its status here`
  );
}

export async function identifyTarget(pid: number): Promise<TargetIdentity> {
  const status = await readProcFile(pid, 'status');
  const uid = /^Uid:\s+(\d+)/m.exec(status);
  const name = /^Name:\s+(.*)$/m.exec(status);
  const state = /^State:\s+(\S)/m.exec(status);
  if (state?.[1] === 'Z') throw new LeakscopeError(`pid ${pid} is a zombie: it has exited and waits for its parent`);
  if (await isKernelThread(pid)) throw new LeakscopeError(`pid ${pid} is a kernel thread (${name?.[1] ?? '?'}): it has no user memory to inspect`);
  const nsPids = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number) ?? [];
  const ownPid = nsPids.length > 0 && Number.isInteger(nsPids[nsPids.length - 1]) ? nsPids[nsPids.length - 1]! : pid;
  return { pid, uid: uid ? Number(uid[1]) : -1, name: name?.[1] ?? '?', ownPid, otherMountNamespace: await inOtherMountNamespace(pid) };
}

/** PF_KTHREAD in the flags of /proc/PID/stat (field 9): a thread of the kernel's own, with no user address space. */
const PF_KTHREAD = 0x00200000;

export async function isKernelThread(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const flags = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[6]);
  return Number.isFinite(flags) && (flags & PF_KTHREAD) !== 0;
}

async function inOtherMountNamespace(pid: number): Promise<boolean> {
  try {
    const [ours, theirs] = await Promise.all([fs.stat('/proc/self/ns/mnt'), fs.stat(`/proc/${pid}/ns/mnt`)]);
    return ours.ino !== theirs.ino || ours.dev !== theirs.dev;
  } catch {
    return false; // not ours to look at: the socket is looked for where it would be in ours
  }
}

/** The socket directory of the agent of a process owned by `uid`, as that process sees it. */
export function socketDirectory(uid: number, env: NodeJS.ProcessEnv = process.env): string {
  return env.LEAKSCOPE_SOCKET_DIR || `/tmp/leakscope-${uid}`;
}

/** Where the agent of a process owned by `uid` puts its socket (`ownPid`: its pid in its own namespace). */
export function socketPath(pid: number, uid: number, env: NodeJS.ProcessEnv = process.env): string {
  return `${socketDirectory(uid, env)}/${pid}.sock`;
}

/**
 * Where `target`'s agent may have its socket, as this process reaches it
 * (through /proc/PID/root when the target has its own mount namespace): the
 * socket directory, then /dev/shm, where an agent goes when the target's
 * /tmp cannot be written (native/src/core/server.cc).
 */
export function targetSocketPaths(target: TargetIdentity, env: NodeJS.ProcessEnv = process.env): string[] {
  const paths = [socketPath(target.ownPid, target.uid, env)];
  if (!env.LEAKSCOPE_SOCKET_DIR) paths.push(`/dev/shm/leakscope-${target.uid}/${target.ownPid}.sock`);
  return paths.map((path) => (target.otherMountNamespace ? `/proc/${target.pid}/root${path}` : path));
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Gone, or a zombie waiting for its parent: either way it runs no more. */
export async function hasExited(pid: number): Promise<boolean> {
  if (!isAlive(pid)) return true;
  const state = await processState(pid);
  return state === null || state === 'Z';
}

/** The state letter of /proc/PID/stat (R, S, D, T, t, Z, …); null when the process is gone. */
export async function processState(pid: number): Promise<string | null> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/**
 * `work` on `pid`, unless the process exits first: then (or when the work
 * fails because it did) the error says that it exited, `while` doing what.
 */
export async function whileAlive<T>(pid: number, doing: string, work: Promise<T>): Promise<T> {
  if (await hasExited(pid)) return work; // gone before: the work says so in its own words
  const exited = new LeakscopeError(`pid ${pid} exited while leakscope was ${doing}`);
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const watch = new Promise<never>((_, reject) => {
    const check = async (): Promise<void> => {
      if (await hasExited(pid)) reject(exited);
      else if (!settled) timer = setTimeout(() => void check(), 100);
    };
    timer = setTimeout(() => void check(), 100);
  });
  try {
    return await Promise.race([work, watch]);
  } catch (error) {
    throw error !== exited && (await hasExited(pid)) ? exited : error;
  } finally {
    settled = true;
    clearTimeout(timer);
  }
}

/** Linux reports process start times in clock ticks; USER_HZ is 100 on every architecture glibc supports here. */
const CLOCK_TICKS_PER_S = 100;

/** When the process started (ISO 8601), from /proc; null when /proc does not say. */
export async function processStartedAt(pid: number): Promise<string | null> {
  try {
    const [stat, systemStat] = await Promise.all([fs.readFile(`/proc/${pid}/stat`, 'utf8'), fs.readFile('/proc/stat', 'utf8')]);
    // Fields after the command (which may hold spaces): state is field 3, starttime field 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[19]);
    const bootTime = /^btime (\d+)$/m.exec(systemStat);
    if (!bootTime || !Number.isFinite(startTicks)) return null;
    return new Date(Number(bootTime[1]) * 1000 + (startTicks * 1000) / CLOCK_TICKS_PER_S).toISOString();
  } catch {
    return null;
  }
}
