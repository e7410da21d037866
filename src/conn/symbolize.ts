// Names for the return addresses the agent sends with its allocation stacks.
// The agent never symbolizes (that would allocate and read files inside the
// target); it sends addresses with the loaded objects' paths, load biases,
// executable segments and GNU build ids. Here each object's file is checked
// against its build id (a binary replaced since the process started would
// give wrong names) and handed to GNU addr2line, which reads ELF symbol
// tables and DWARF line info and demangles C++ and Rust. A distribution's
// separate debug file (/usr/lib/debug/.build-id/xx/yyyy.debug) is used when
// present. Results are cached per build id for the life of the CLI.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { HeapModule, StackFrame } from '../model/snapshot.js';
import type { ModuleFacts } from '../model/stacks.js';

const run = promisify(execFile);


/** What an ELF file's section headers say: enough to tell what names it can give. */
export interface ElfSummary {
  readonly buildId: string | null;
  readonly hasSymtab: boolean;
  readonly hasDynsym: boolean;
  readonly hasDebugInfo: boolean;
}

/** Reads an ELF64 little-endian file's section headers; null when it is not one or cannot be read. */
export async function readElfSummary(path: string): Promise<ElfSummary | null> {
  let file;
  try {
    file = await open(path, 'r');
  } catch {
    return null;
  }
  try {
    const head = Buffer.alloc(64);
    if ((await file.read(head, 0, 64, 0)).bytesRead < 64) return null;
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return null;
    const shoff = Number(head.readBigUInt64LE(0x28));
    const shentsize = head.readUInt16LE(0x3a);
    const shnum = head.readUInt16LE(0x3c);
    const shstrndx = head.readUInt16LE(0x3e);
    if (shoff === 0 || shnum === 0 || shentsize < 64 || shstrndx >= shnum) return null;
    const table = Buffer.alloc(shentsize * shnum);
    await file.read(table, 0, table.length, shoff);
    const section = (i: number) => ({
      name: table.readUInt32LE(i * shentsize),
      type: table.readUInt32LE(i * shentsize + 4),
      offset: Number(table.readBigUInt64LE(i * shentsize + 0x18)),
      size: Number(table.readBigUInt64LE(i * shentsize + 0x20)),
    });
    const names = section(shstrndx);
    const strings = Buffer.alloc(Math.min(names.size, 1 << 20));
    await file.read(strings, 0, strings.length, names.offset);
    const nameOf = (at: number) => strings.toString('latin1', at, strings.indexOf(0, at));
    let buildId: string | null = null;
    let hasSymtab = false;
    let hasDynsym = false;
    let hasDebugInfo = false;
    for (let i = 0; i < shnum; i++) {
      const s = section(i);
      const name = nameOf(s.name);
      if (name === '.symtab' && s.type === 2) hasSymtab = true;
      if (name === '.dynsym') hasDynsym = true;
      if (name === '.debug_info' && s.type !== 8) hasDebugInfo = true;
      if (name === '.note.gnu.build-id' && s.size >= 16 && s.size < 1024) {
        const note = Buffer.alloc(s.size);
        await file.read(note, 0, s.size, s.offset);
        const namesz = note.readUInt32LE(0);
        const descsz = note.readUInt32LE(4);
        const descAt = 12 + ((namesz + 3) & ~3);
        if (note.readUInt32LE(8) === 3 && descAt + descsz <= note.length) buildId = note.toString('hex', descAt, descAt + descsz);
      }
    }
    return { buildId, hasSymtab, hasDynsym, hasDebugInfo };
  } finally {
    await file.close();
  }
}

/** A frame's place in its object: the module, and the ELF virtual address addr2line wants. */
interface Placed {
  readonly module: ModuleFacts;
  readonly elfAddress: number;
}

function place(address: number, modules: readonly ModuleFacts[]): Placed | null {
  for (const module of modules)
    for (const s of module.segments)
      if (address >= parseInt(s.start, 16) && address < parseInt(s.end, 16))
        return { module, elfAddress: address - parseInt(module.load_bias, 16) };
  return null;
}

/** Where to read a module's names from, and what it can give. */
interface Source {
  readonly status: HeapModule['symbols'];
  readonly file: string | null;
  /** Said once for the module in the snapshot's notes. */
  readonly note?: string;
}

/** The kernel's name for a mapped file removed or replaced since it was mapped. */
const DELETED = ' (deleted)';

let addr2lineMissing: boolean | null = null;

async function haveAddr2line(): Promise<boolean> {
  if (addr2lineMissing === null) {
    addr2lineMissing = await run('addr2line', ['--version']).then(
      () => false,
      () => true,
    );
  }
  return !addr2lineMissing;
}

/** Names the frames of native allocation stacks; one per CLI process, caching by build id. */
export class Symbolizer {
  private readonly sources = new Map<string, Promise<Source>>();
  private readonly names = new Map<string, StackFrame[]>();

  /**
   * Resolves `addresses` (hex return addresses, as the agent sends them) of
   * process `pid`. Returns each address's frames, innermost (inlined) first,
   * and what each module could give.
   */
  async symbolize(
    pid: number,
    modules: readonly ModuleFacts[],
    addresses: readonly string[],
  ): Promise<{ frames: Map<string, StackFrame[]>; modules: HeapModule[]; notes: string[] }> {
    const frames = new Map<string, StackFrame[]>();
    const wanted = new Map<ModuleFacts, { address: string; elf: number }[]>();
    for (const address of new Set(addresses)) {
      const placed = place(parseInt(address, 16), modules);
      if (!placed) {
        frames.set(address, [{ address, function: null, file: null, line: null, module: null }]);
        continue;
      }
      const list = wanted.get(placed.module) ?? [];
      list.push({ address, elf: placed.elfAddress });
      wanted.set(placed.module, list);
    }
    const used: HeapModule[] = [];
    const notes: string[] = [];
    const tool = await haveAddr2line();
    if (!tool && wanted.size > 0) notes.push('addr2line (GNU binutils) is not installed: stacks show addresses only; install binutils for names');
    for (const [module, list] of wanted) {
      const source = await this.source(pid, module);
      const text = module.segments[0];
      if (source.note) notes.push(source.note);
      used.push({
        path: module.path,
        build_id: module.build_id || null,
        symbols: source.status,
        ...(text ? { start: text.start, end: text.end, file_offset: text.file_offset } : {}),
      });
      const key = `${module.build_id || module.path}`;
      const missing = list.filter((a) => !this.names.has(`${key}@${a.elf}`));
      if (missing.length > 0 && source.file && tool) await this.resolve(source.file, key, module.path, missing.map((a) => a.elf));
      for (const a of list) {
        const named = this.names.get(`${key}@${a.elf}`);
        frames.set(
          a.address,
          (named ?? [{ address: '', function: null, file: null, line: null, module: module.path }]).map((f) => ({ ...f, address: a.address })),
        );
      }
    }
    for (const m of used) {
      if (m.symbols === 'none') notes.push(`${m.path} has no symbols (stripped): its frames are addresses only`);
      if (m.symbols === 'exported-symbols')
        notes.push(`${m.path} is stripped: only its exported functions have names, the rest are addresses (install its debug symbols, or build it with -g)`);
      if (m.symbols === 'build-id-mismatch')
        notes.push(`${m.path} on disk is not the file the process loaded (its build id differs): its frames are addresses only`);
      if (m.symbols === 'unreadable') notes.push(`${m.path} could not be read: its frames are addresses only`);
    }
    return { frames, modules: used, notes };
  }

  private source(pid: number, module: ModuleFacts): Promise<Source> {
    const key = `${module.build_id}|${module.path}`;
    let found = this.sources.get(key);
    if (!found) {
      found = findSource(pid, module);
      this.sources.set(key, found);
    }
    return found;
  }

  private async resolve(file: string, key: string, modulePath: string, elfAddresses: number[]): Promise<void> {
    for (let at = 0; at < elfAddresses.length; at += 500) {
      const chunk = elfAddresses.slice(at, at + 500);
      // Return addresses: the call is the byte before.
      const args = ['-e', file, '-a', '-f', '-i', '-C', ...chunk.map((a) => `0x${Math.max(0, a - 1).toString(16)}`)];
      let stdout = '';
      try {
        ({ stdout } = await run('addr2line', args, { maxBuffer: 64 * 1024 * 1024 }));
      } catch {
        stdout = '';
      }
      const groups = parseAddr2line(stdout);
      chunk.forEach((elf, i) => {
        const group = groups[i] ?? [];
        const named: StackFrame[] = group.map((g, k) => ({
          address: '',
          function: g.function,
          file: g.file,
          line: g.line,
          module: modulePath,
          ...(k < group.length - 1 ? { inlined: true } : {}),
        }));
        this.names.set(`${key}@${elf}`, named.length ? named : [{ address: '', function: null, file: null, line: null, module: modulePath }]);
      });
    }
  }
}

/** addr2line -a -f -i output: per address, its frames (inlined ones first). */
export function parseAddr2line(stdout: string): { function: string | null; file: string | null; line: number | null }[][] {
  const groups: { function: string | null; file: string | null; line: number | null }[][] = [];
  const lines = stdout.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const fn = lines[i] ?? '';
    if (/^0x[0-9a-f]+$/.test(fn)) {
      groups.push([]);
      continue;
    }
    const group = groups[groups.length - 1];
    if (!group || i + 1 >= lines.length) continue;
    const where = lines[++i] ?? '';
    const m = /^(.*):(\d+|\?)(?: \(discriminator \d+\))?$/.exec(where);
    const file = m?.[1] && m[1] !== '??' ? m[1] : null;
    const line = m?.[2] && m[2] !== '?' && Number(m[2]) > 0 ? Number(m[2]) : null;
    group.push({ function: fn === '??' ? null : fn, file, line });
  }
  return groups;
}

/** What a file can give, when it is the one the process loaded. */
function sourceOf(elf: ElfSummary, file: string, debugFile: string | null): Source {
  if (!elf.hasDebugInfo && debugFile && existsSync(debugFile)) return { status: 'debug-info', file: debugFile };
  if (elf.hasDebugInfo) return { status: 'debug-info', file };
  if (elf.hasSymtab || elf.hasDynsym) return { status: elf.hasSymtab ? 'symbols' : 'exported-symbols', file };
  return { status: 'none', file: null };
}

async function findSource(pid: number, module: ModuleFacts): Promise<Source> {
  const debugFile =
    module.build_id.length > 2 ? `/usr/lib/debug/.build-id/${module.build_id.slice(0, 2)}/${module.build_id.slice(2)}.debug` : null;
  const path = module.path.endsWith(DELETED) ? module.path.slice(0, -DELETED.length) : module.path;
  const inTarget = `/proc/${pid}/root${path}`;
  const file = existsSync(inTarget) ? inTarget : path;
  const elf = await readElfSummary(file);
  if (elf && (!module.build_id || !elf.buildId || elf.buildId === module.build_id) && !module.path.endsWith(DELETED))
    return sourceOf(elf, file, debugFile);
  // Replaced or removed since the process loaded it. The executable the
  // process runs stays readable through /proc/<pid>/exe.
  const exe = `/proc/${pid}/exe`;
  const running = module.build_id ? await readElfSummary(exe) : null;
  if (running && running.buildId === module.build_id) {
    const source = sourceOf(running, exe, debugFile);
    return { ...source, note: `${path} was replaced on disk since the process started: its names come from the file the process runs (${exe})` };
  }
  if (debugFile && existsSync(debugFile)) return { status: 'debug-info', file: debugFile };
  return elf ? { status: 'build-id-mismatch', file: null } : { status: 'unreadable', file: null };
}
