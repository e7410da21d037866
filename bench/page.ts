// Shared by the benchmark suites: the machine they ran on, medians, a
// process's CPU time, and the marked sections of docs/benchmarks.md each
// suite rewrites.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { PACKAGE_ROOT } from '../src/paths.js';

export const PAGE = resolve(PACKAGE_ROOT, 'docs/benchmarks.md');

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** A process's CPU time so far (user + system), ms: /proc/<pid>/stat fields 14 and 15, in clock ticks of 10 ms. */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const glibc = execFileSync('ldd', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '';
  const os = existsSync('/etc/os-release') ? (/PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '') : '';
  return `${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${os}, Linux ${release()}, ${glibc.replace(/^ldd /, '')}`;
}

export function measuredOn(command: string): string {
  return `Measured ${new Date().toISOString().slice(0, 10)} by \`${command}\` on ${machine()}.`;
}

/** Replaces the page's section between <!-- bench:NAME:begin/end --> (appends it when missing). */
export function writeSection(name: string, body: string): void {
  const page = existsSync(PAGE) ? readFileSync(PAGE, 'utf8') : '';
  const begin = `<!-- bench:${name}:begin -->`;
  const end = `<!-- bench:${name}:end -->`;
  const updated = page.includes(begin)
    ? page.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), `${begin}\n${body}\n${end}`)
    : `${page}\n${begin}\n${body}\n${end}\n`;
  writeFileSync(PAGE, updated);
}
