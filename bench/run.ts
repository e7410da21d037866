// npm run bench [-- SUITE...]: runs the benchmark suites (all by default:
// malloc, tasks, console, rust, node, inject, export) and writes their sections of docs/benchmarks.md.
import { runConsoleSuite } from './suites/console.js';
import { runExportSuite } from './suites/export.js';
import { runInjectSuite } from './suites/inject.js';
import { runMallocSuite } from './suites/malloc.js';
import { runNodeSuite } from './suites/node.js';
import { runRustSuite } from './suites/rust.js';
import { runTasksSuite } from './suites/tasks.js';

const SUITES: Readonly<Record<string, () => void | Promise<void>>> = {
  malloc: runMallocSuite,
  tasks: runTasksSuite,
  console: runConsoleSuite,
  rust: runRustSuite,
  node: runNodeSuite,
  inject: runInjectSuite,
  export: runExportSuite,
};

const chosen = process.argv.slice(2);
for (const name of chosen) if (!(name in SUITES)) throw new Error(`unknown suite '${name}' (have: ${Object.keys(SUITES).join(', ')})`);
for (const name of chosen.length > 0 ? chosen : Object.keys(SUITES)) await SUITES[name]!();
