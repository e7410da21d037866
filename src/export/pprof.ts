// A snapshot's allocation stacks as a pprof profile.proto (gzipped), in Go's
// heap-profile shape: four sample types (alloc_objects/count,
// alloc_space/bytes, inuse_objects/count, inuse_space/bytes), period
// space/bytes at the sampling interval, mappings with GNU build ids, and
// functions with file and line. `go tool pprof`, its -diff_base and
// Pyroscope read it. Encoded with the pprof-format package.
import { gzipSync } from 'node:zlib';
import { Function as PprofFunction, Line, Location, Mapping, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import type { HeapStacks, StackFrame } from '../model/snapshot.js';

export interface ProfileMeta {
  /** When the snapshot was taken. */
  readonly takenAt: Date;
  /** How long the samples were gathered (since the agent started). */
  readonly durationMs: number;
  /** Labels on every sample (pid, command). */
  readonly labels?: Readonly<Record<string, string>>;
}

/** The profile.proto bytes, gzipped as `go tool pprof` expects them. */
export function pprofProfile(heap: HeapStacks, meta: ProfileMeta): Buffer {
  const strings = new StringTable();
  const str = (s: string) => strings.dedup(s);
  const mappings: Mapping[] = [];
  const mappingOf = new Map<string, number>();
  heap.modules.forEach((m, i) => {
    const id = i + 1;
    mappingOf.set(m.path, id);
    const named = m.symbols === 'debug-info' || m.symbols === 'symbols' || m.symbols === 'exported-symbols';
    mappings.push(
      new Mapping({
        id,
        memoryStart: m.start ? BigInt(m.start) : 0,
        memoryLimit: m.end ? BigInt(m.end) : 0,
        fileOffset: m.file_offset ?? 0,
        filename: str(m.path),
        buildId: str(m.build_id ?? ''),
        hasFunctions: named,
        hasFilenames: m.symbols === 'debug-info',
        hasLineNumbers: m.symbols === 'debug-info',
        hasInlineFrames: m.symbols === 'debug-info',
      }),
    );
  });
  const functions: PprofFunction[] = [];
  const functionOf = new Map<string, number>();
  const functionId = (f: StackFrame): number => {
    const name = f.function ?? (f.address ? `${f.address}${f.module ? ` in ${f.module.slice(f.module.lastIndexOf('/') + 1)}` : ''}` : '?');
    const key = `${name}\0${f.file ?? ''}`;
    let id = functionOf.get(key);
    if (id === undefined) {
      id = functions.length + 1;
      functionOf.set(key, id);
      functions.push(new PprofFunction({ id, name: str(name), systemName: str(name), filename: str(f.file ?? '') }));
    }
    return id;
  };
  // One location per address (native: its inlined frames are its lines,
  // innermost first, as profile.proto has them), or per JavaScript frame.
  const locations: Location[] = [];
  const locationOf = new Map<string, number>();
  const samples: Sample[] = [];
  const labels = Object.entries(meta.labels ?? {}).map(([key, value]) => ({ key: str(key), str: str(value) }));
  for (const stack of heap.stacks) {
    const groups: StackFrame[][] = [];
    for (const f of stack.frames) {
      const last = groups[groups.length - 1];
      if (last && f.address && last[0]?.address === f.address) last.push(f);
      else groups.push([f]);
    }
    const ids = groups.map((group) => {
      const first = group[0]!;
      const key = first.address || `${first.function}\0${first.file}\0${first.line}`;
      let id = locationOf.get(key);
      if (id === undefined) {
        id = locations.length + 1;
        locationOf.set(key, id);
        locations.push(
          new Location({
            id,
            mappingId: (first.module && mappingOf.get(first.module)) || 0,
            address: first.address ? BigInt(first.address) : 0,
            line: group.map((f) => new Line({ functionId: functionId(f), line: f.line ?? 0 })),
          }),
        );
      }
      return id;
    });
    samples.push(
      new Sample({
        locationId: ids,
        value: [stack.allocated_blocks ?? 0, stack.allocated_bytes ?? 0, stack.live_blocks, stack.live_bytes],
        label: labels,
      }),
    );
  }
  const profile = new Profile({
    sampleType: [
      new ValueType({ type: str('alloc_objects'), unit: str('count') }),
      new ValueType({ type: str('alloc_space'), unit: str('bytes') }),
      new ValueType({ type: str('inuse_objects'), unit: str('count') }),
      new ValueType({ type: str('inuse_space'), unit: str('bytes') }),
    ],
    sample: samples,
    mapping: mappings,
    location: locations,
    function: functions,
    stringTable: strings,
    timeNanos: BigInt(meta.takenAt.getTime()) * 1_000_000n,
    durationNanos: BigInt(Math.max(0, Math.round(meta.durationMs))) * 1_000_000n,
    periodType: new ValueType({ type: str('space'), unit: str('bytes') }),
    period: heap.sample_bytes,
    // inuse_space first in `go tool pprof`, as for Go's own heap profiles.
    defaultSampleType: str('inuse_space'),
  });
  return gzipSync(profile.encode());
}
