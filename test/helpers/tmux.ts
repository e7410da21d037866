// A real terminal for console tests: a detached tmux session running one
// command, with keys sent and the screen read back.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';

const run = promisify(execFile);

let sessions = 0;

export class Terminal {
  private constructor(
    readonly session: string,
    private readonly statusFile: string,
  ) {}

  /**
   * Starts `command` (argv) in an 80×24 (or given) terminal; the session ends
   * with the test. `env` sets variables for the command, or with `null`
   * removes them (the tmux server keeps the environment of whoever started it).
   */
  static async start(
    t: ExecutionContext,
    command: readonly string[],
    { size = { columns: 80, rows: 24 }, env = {} }: { size?: { columns: number; rows: number }; env?: Record<string, string | null> } = {},
  ): Promise<Terminal> {
    const session = `leakscope-test-${process.pid}-${++sessions}`;
    const statusFile = join(tmpdir(), `${session}.status`);
    const quote = (arg: string): string => `'${arg.replace(/'/g, "'\\''")}'`;
    const envArgs = Object.entries(env).map(([name, value]) => (value === null ? `-u ${quote(name)}` : quote(`${name}=${value}`)));
    // A shell runs the command and notes its exit status, then idles so the screen stays readable.
    const script = `env ${envArgs.join(' ')} ${command.map(quote).join(' ')}; echo $? > ${quote(statusFile)}; exec sleep 600`;
    await run('tmux', ['new-session', '-d', '-s', session, '-x', String(size.columns), '-y', String(size.rows), script]);
    t.teardown(async () => {
      await run('tmux', ['kill-session', '-t', session]).catch(() => undefined);
      rmSync(statusFile, { force: true });
    });
    return new Terminal(session, statusFile);
  }

  async screen(): Promise<string> {
    return (await run('tmux', ['capture-pane', '-p', '-t', this.session])).stdout;
  }

  /** tmux key names (Enter, Escape, Down, PageDown …) or, with `literal`, text. */
  async keys(keys: readonly string[], literal = false): Promise<void> {
    await run('tmux', ['send-keys', '-t', this.session, ...(literal ? ['-l'] : []), ...keys]);
  }

  /** Polls until the screen satisfies `check`; fails with the screen when it never does. */
  async until(check: string | RegExp | ((screen: string) => boolean), timeoutMs = 15_000): Promise<string> {
    const test = typeof check === 'function' ? check : (s: string) => (typeof check === 'string' ? s.includes(check) : check.test(s));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const screen = await this.screen();
      if (test(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`the terminal never showed ${String(check)}; it shows:\n${screen}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The pid of the command (the pane's shell's child). */
  async commandPid(): Promise<number> {
    const { stdout } = await run('tmux', ['display-message', '-p', '-t', this.session, '#{pane_pid}']);
    const { stdout: children } = await run('ps', ['-o', 'pid=', '--ppid', stdout.trim()]);
    const pid = Number(children.trim().split('\n')[0]);
    if (!pid) throw new Error(`no command runs in ${this.session}`);
    return pid;
  }

  /** Waits for the command to exit and returns its exit status. */
  async untilExited(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (!existsSync(this.statusFile) || readFileSync(this.statusFile, 'utf8').trim() === '') {
      if (Date.now() > deadline) throw new Error(`the command in ${this.session} did not exit; it shows:\n${await this.screen()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return Number(readFileSync(this.statusFile, 'utf8').trim());
  }
}
