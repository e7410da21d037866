// A snapshot of a process without an agent: only what /proc shows (RSS,
// threads and their states, which allocator library is mapped). Clearly
// labelled as such: no heap ledger, no idle times, no history.
import { promises as fs } from 'node:fs';
import { LeakscopeError } from '../errors.js';
import { type AllocatorName, NO_TASKS, type Observation, type ProcessMemory, SNAPSHOT_SCHEMA, type ThreadInfo } from '../model/snapshot.js';
import { readProcFile } from './target.js';

const PAGE_SIZE = 4096;
const CLOCK_TICKS_PER_S = 100;

export function parseTaskStat(text: string): { name: string; state: string; cpuTicks: number } | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is the state; utime and stime are fields 14 and 15 of stat(5).
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return { name: text.slice(open + 1, close), state: fields[0] ?? '?', cpuTicks: utime + stime };
}

/** RSS by kind from /proc/<pid>/status; null when the kernel does not split it (before Linux 4.5). */
export function parseProcessMemory(status: string): ProcessMemory | null {
  const kib = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : null;
  };
  const anon = kib('RssAnon');
  const file = kib('RssFile');
  if (anon === null || file === null) return null;
  const virtual = kib('VmSize');
  return { anon_bytes: anon, file_bytes: file, shmem_bytes: kib('RssShmem') ?? 0, swap_bytes: kib('VmSwap') ?? 0, ...(virtual === null ? {} : { virtual_bytes: virtual }) };
}

export async function readProcessMemory(pid: number): Promise<ProcessMemory | null> {
  return parseProcessMemory(await readProcFile(pid, 'status'));
}

export function allocatorFromMaps(maps: string): AllocatorName {
  if (/libmimalloc[^/\s]*\.so/.test(maps)) return 'mimalloc';
  if (/libjemalloc[^/\s]*\.so/.test(maps)) return 'jemalloc';
  if (/libtcmalloc[^/\s]*\.so/.test(maps)) return 'tcmalloc';
  if (/\/libc\.so\.6/.test(maps)) return 'glibc';
  return 'unknown';
}

async function readThreads(pid: number): Promise<ThreadInfo[]> {
  let tids: string[];
  try {
    tids = await fs.readdir(`/proc/${pid}/task`);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LeakscopeError(`no process with pid ${pid} (it may have exited)`);
    throw new LeakscopeError(`permission denied listing threads of pid ${pid}: run leakscope as the process's user or as root`);
  }
  const threads: ThreadInfo[] = [];
  for (const tid of tids) {
    let stat: ReturnType<typeof parseTaskStat> = null;
    try {
      stat = parseTaskStat(await fs.readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
    } catch {
      continue;  // the thread exited while we listed them
    }
    if (!stat) continue;
    threads.push({
      tid: Number(tid),
      name: stat.name,
      state: stat.state,
      cpu_ms: (stat.cpuTicks * 1000) / CLOCK_TICKS_PER_S,
      idle_ms: null,
      start_routine: null,
      creator_tid: null,
      agent_thread: false,
      heap: null,
    });
  }
  return threads.sort((a, b) => a.tid - b.tid);
}

/** How a reason given to procObservation starts when the injector refused (its message follows). */
export const AGENT_NOT_LOADED = 'the agent could not be loaded into it';

export async function procObservation(pid: number, why: string): Promise<Observation> {
  const [statm, cmdline, maps] = await Promise.all([
    readProcFile(pid, 'statm'),
    readProcFile(pid, 'cmdline'),
    readProcFile(pid, 'maps'),
  ]);
  const threads = await readThreads(pid);
  const rss = Number(statm.split(' ')[1] ?? 0) * PAGE_SIZE;
  const name = allocatorFromMaps(maps);
  return {
    schema: SNAPSHOT_SCHEMA,
    pid,
    command: cmdline.replace(/\0+$/, '').split('\0').join(' '),
    taken_at: new Date().toISOString(),
    agent: {
      mode: 'proc',
      version: null,
      sample_bytes: null,
      sample_store: null,
      counts: null,
      dropped_events: 0,
      notes: [
        why.startsWith(AGENT_NOT_LOADED)
          ? `${why}: /proc view only, without heap ledger, idle times or history`
          : `no agent (${why}): /proc view only, without heap ledger, idle times or history; start the program with 'leakscope run' to see them`,
      ],
    },
    process: { rss_bytes: rss, threads: threads.length },
    allocator: {
      name,
      version: null,
      live_bytes: null,
      allocated_bytes: null,
      freed_bytes: null,
      alloc_count: null,
      free_count: null,
      arenas: [],
      background_thread: null,
      reclaim_action: null,
      stats: {},
    },
    threads,
    tasks: NO_TASKS,
    history: [],
  };
}
