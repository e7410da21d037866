// leakscope as a user installs it: `npm pack`, then `npm install -g` of the
// tarball into a temporary prefix, with a PATH that has no cargo or rustc.
// The installed CLI runs a native program and a Node one, snapshots both, and
// attaches to a native process by pid (a snapshot and the console). Then the
// same tarball without its prebuilt native parts: the install builds them
// from the sources it carries.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import type { Snapshot } from '../src/model/snapshot.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { FIXTURES, NODE_FIXTURES, startFixture } from './helpers/process.js';
import { Terminal } from './helpers/tmux.js';

const run = promisify(execFile);

/** PATH without the directories that hold a Rust toolchain. */
function pathWithoutRust(): string {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir && !['cargo', 'rustc'].some((tool) => existsSync(join(dir, tool))))
    .join(delimiter);
}

interface Installed {
  readonly bin: string;
  readonly env: NodeJS.ProcessEnv;
  readonly installLog: string;
}

async function packInto(t: ExecutionContext, dir: string, source = PACKAGE_ROOT): Promise<string> {
  // --ignore-scripts: npm test built everything already; prepack would rebuild dist/ under the other tests' feet.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: source, maxBuffer: 64 << 20 });
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  t.truthy(packed);
  return join(dir, packed!.filename);
}

async function installGlobally(tarball: string, dir: string): Promise<Installed> {
  const prefix = join(dir, 'prefix');
  mkdirSync(prefix, { recursive: true });
  const env = { ...process.env, PATH: pathWithoutRust(), npm_config_prefix: prefix, npm_config_cache: process.env.npm_config_cache ?? join(process.env.HOME ?? '/root', '.npm') };
  const install = await run('npm', ['install', '-g', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], {
    env,
    maxBuffer: 64 << 20,
    timeout: 240_000,
  });
  return { bin: join(prefix, 'bin', 'leakscope'), env: { ...env, PATH: `${join(prefix, 'bin')}${delimiter}${env.PATH}` }, installLog: install.stdout + install.stderr };
}

async function snapshot(installed: Installed, pid: number, extra: readonly string[] = []): Promise<Snapshot> {
  const { stdout } = await run(installed.bin, ['snapshot', String(pid), '--json', ...extra], { env: installed.env, maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as Snapshot;
}

test.serial('npm pack, npm install -g without Rust: run, snapshot and attach on native and Node programs', async (t) => {
  t.timeout(300_000);
  t.false(spawnSync('cargo', ['--version'], { env: { ...process.env, PATH: pathWithoutRust() } }).status === 0, 'cargo is out of reach');
  const dir = mkdtempSync(join(tmpdir(), 'leakscope-package-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tarball = await packInto(t, dir);

  // What the package holds: the CLI, the prebuilt agent and its sources; no tests, fixtures or benches.
  const { stdout: listing } = await run('tar', ['-tzf', tarball]);
  const files = listing.trim().split('\n').map((f) => f.replace(/^package\//, ''));
  for (const needed of ['bin/leakscope.js', 'dist/src/cli/main.js', 'build/lib/libleakscope.so', 'build/lib/leakscope.node', 'build/lib/leakscope-inject', 'build/fixtures/event_loop', 'native/src/core/agent.cc', 'scripts/install.mjs'])
    t.true(files.includes(needed), `${needed} is in the package`);
  t.deepEqual(
    files.filter((f) => /^(test|bench|dist\/test|dist\/bench|native\/crate)\/|^fixtures\/(?!demo\/|event_loop\.c$|fixture\.h$)/.test(f)),
    [],
  );

  const installed = await installGlobally(tarball, dir);
  t.regex(installed.installLog, /the native agent is built and runs here/);
  const help = await run(installed.bin, ['--help'], { env: installed.env });
  t.regex(help.stdout, /Usage: leakscope/);

  // run: a native program and a Node one, with the agent from the package.
  const growing = await startFixture<{ pid: number }>(t, 'growing_leak', ['--steady'], { cli: installed.bin, env: installed.env });
  const native = await snapshot(installed, growing.pid);
  t.is(native.agent.mode, 'preload');
  t.is(native.allocator.name, 'glibc');
  const node = await startFixture<{ pid: number }>(t, 'global_array.mjs', [], { cli: installed.bin, env: installed.env, dir: NODE_FIXTURES, interpreter: process.execPath });
  const nodeSnapshot = await snapshot(installed, node.pid);
  t.truthy(nodeSnapshot.node, 'a Node snapshot');
  t.true(nodeSnapshot.node!.v8_heap.used_bytes > 0);

  // attach by pid: a native process with no agent gets one through the injector.
  const plain = await startFixture<{ pid: number }>(t, 'attach_target', ['--idle'], { withoutAgent: true });
  t.is((await snapshot(installed, plain.pid, ['--linger', '0s'])).agent.mode, 'inject');
  const term = await Terminal.start(t, [installed.bin, 'attach', String(plain.pid)], { env: { PATH: installed.env.PATH!, CI: 'true' } });
  await term.until(new RegExp(`pid ${plain.pid} · agent inject`));
  await term.keys(['q']);
  t.is(await term.untilExited(), 0);
});

test.serial('a package whose prebuilt parts are missing builds them at install, from the sources it carries', async (t) => {
  t.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'leakscope-package-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tarball = await packInto(t, dir);
  const unpacked = join(dir, 'unpacked');
  mkdirSync(unpacked);
  await run('tar', ['-xzf', tarball, '-C', unpacked]);
  rmSync(join(unpacked, 'package', 'build'), { recursive: true });
  rmSync(tarball);
  const stripped = await packInto(t, dir, join(unpacked, 'package'));
  const { stdout: listing } = await run('tar', ['-tzf', stripped]);
  t.false(listing.includes('package/build/'), 'no prebuilt parts');

  const installed = await installGlobally(stripped, dir);
  t.regex(installed.installLog, /leakscope: built the native agent here \(not built \(build\/lib\/libleakscope\.so, /);
  const root = join(dir, 'prefix', 'lib', 'node_modules', 'leakscope');
  for (const file of ['build/lib/libleakscope.so', 'build/lib/leakscope.node', 'build/lib/leakscope-inject', 'build/fixtures/event_loop'])
    t.true(existsSync(join(root, file)), `${file} was built`);
  t.false(readdirSync(join(root, 'build', 'fixtures')).includes('growing_leak'), 'only what the CLI needs');
  const growing = await startFixture<{ pid: number }>(t, 'growing_leak', ['--steady'], { cli: installed.bin, env: installed.env });
  t.is((await snapshot(installed, growing.pid)).agent.mode, 'preload');
  t.true(existsSync(resolve(FIXTURES, 'growing_leak')));
});
