#!/usr/bin/env node
// npm's install step, in a clone and in an installed package alike: the
// native parts the CLI needs (the agent libraries, the Node addon, the
// injector, the demo's program). A package carries them prebuilt for
// linux-x64 glibc; they are kept when they run here, and built from the
// sources it also carries (cmake-js, node-api-headers, g++, cmake) when they
// do not. A clone builds them. `--force` builds whatever is there.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUTPUTS = ['build/lib/libleakscope.so', 'build/lib/libleakscope-exact.so', 'build/lib/libleakscope-inject.so', 'build/lib/leakscope-inject', 'build/lib/leakscope.node', 'build/fixtures/event_loop'];

/** Why the built files cannot be used here, or null when they can. */
function unusable() {
  const missing = OUTPUTS.filter((file) => !existsSync(resolve(root, file)));
  if (missing.length) return `not built (${missing.join(', ')})`;
  if (process.platform !== 'linux' || process.arch !== 'x64') return `built for linux-x64, this is ${process.platform}-${process.arch}`;
  // The injector links the same C library as the agents: if the loader runs it, it runs them.
  const injector = spawnSync(resolve(root, 'build/lib/leakscope-inject'), [], { encoding: 'utf8' });
  if (injector.error || !/^usage: /m.test(injector.stderr + injector.stdout)) return `the injector does not run here: ${(injector.error?.message ?? injector.stderr).trim()}`;
  const addon = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(resolve(root, 'build/lib/leakscope.node'))})`], { encoding: 'utf8' });
  if (addon.status !== 0) return `the Node addon does not load here: ${addon.stderr.trim().split('\n')[0]}`;
  return null;
}

const force = process.argv.includes('--force');
const cpus = Math.max(2, availableParallelism());
const reason = force ? 'asked to' : unusable();
if (reason === null) {
  console.log('leakscope: the native agent is built and runs here');
  process.exit(0);
}
const cmakeJs = resolve(root, 'node_modules/cmake-js/bin/cmake-js');
const build = existsSync(cmakeJs)
  ? spawnSync(process.execPath, [cmakeJs, 'build', '--out', 'build', '--config', 'Release', '--target', 'leakscope_cli', '--parallel', String(cpus)], { cwd: root, stdio: 'inherit' })
  : spawnSync('npx', ['--no-install', 'cmake-js', 'build', '--out', 'build', '--config', 'Release', '--target', 'leakscope_cli', '--parallel', String(cpus)], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  console.error(
    `leakscope: the native agent is needed (${reason}) and could not be built here; it needs g++ (C++17) and cmake 3.16 or newer ` +
      `(Debian: apt-get install g++ cmake), then 'npm rebuild leakscope'`,
  );
  process.exit(1);
}
const after = unusable();
if (after !== null) {
  console.error(`leakscope: built, but ${after}`);
  process.exit(1);
}
console.log(`leakscope: built the native agent here (${reason})`);
