// Where a promise, timer or span was created: the first frame of the
// program's own code, as "file:line" (relative to the working directory when
// inside it). Frames of leakscope, of Node's internals and of the
// OpenTelemetry packages are skipped.
import { relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const OWN_DIR = __dirname + sep;
const SKIPPED_PACKAGES = `${sep}node_modules${sep}@opentelemetry${sep}`;
/** Frames kept per capture: enough to get past Node's and leakscope's own. */
const FRAMES = 8;

type CallSite = NodeJS.CallSite;

/** Display paths of the files seen so far (a URL and a relative() cost microseconds each capture). */
const displayPaths = new Map<string, string>();
const MAX_CACHED_PATHS = 4096;
let cachedForCwd = '';

function displayPath(file: string): string {
  const cwd = process.cwd();
  if (cwd !== cachedForCwd) {
    displayPaths.clear();
    cachedForCwd = cwd;
  }
  const cached = displayPaths.get(file);
  if (cached !== undefined) return cached;
  const path = file.startsWith('file://') ? fileURLToPath(file) : file;
  const fromCwd = relative(cwd, path);
  const shown = fromCwd && !fromCwd.startsWith('..') && !fromCwd.startsWith(sep) ? fromCwd : path;
  if (displayPaths.size >= MAX_CACHED_PATHS) displayPaths.clear();
  displayPaths.set(file, shown);
  return shown;
}

/** Where a call with only Node's own frames on its stack was made: the runtime's, not the program's. */
export const RUNTIME_SITE = '(node internal)';

function programFrame(frames: readonly CallSite[]): string | null {
  for (const frame of frames) {
    const file = frame.getFileName();
    if (!file || file.startsWith('node:') || file.startsWith(OWN_DIR) || file.includes(SKIPPED_PACKAGES)) continue;
    return `${displayPath(file)}:${frame.getLineNumber() ?? 0}`;
  }
  return null;
}

const holder: { stack?: unknown } = {};

function structuredFrames(_error: Error, frames: CallSite[]): CallSite[] {
  return frames;
}

/** The creation site of whatever the caller is being told about, or "unknown". */
export function captureSite(): string {
  const limit = Error.stackTraceLimit;
  const prepare = Error.prepareStackTrace;
  Error.stackTraceLimit = FRAMES;
  Error.prepareStackTrace = structuredFrames;
  try {
    Error.captureStackTrace(holder, captureSite);
    const frames = holder.stack as CallSite[] | undefined;
    if (!frames) return 'unknown';
    // Every frame Node's own, and fewer than the limit: nothing of the program's called it.
    const others = frames.filter((f) => !f.getFileName()?.startsWith(OWN_DIR));
    if (others.length > 0 && frames.length < FRAMES && others.every((f) => f.getFileName()?.startsWith('node:'))) return RUNTIME_SITE;
    return programFrame(frames) ?? 'unknown';
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = limit;
    holder.stack = undefined;
  }
}
