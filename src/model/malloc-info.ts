// glibc's malloc_info(3) XML, per arena. The agent sends it verbatim; its
// format is glibc's (malloc/malloc.c, __malloc_info): one <heap nr=…> per
// arena with <total type="fast|rest"> free chunks (rest includes the top
// chunk) and <system type="current"> bytes mapped for the arena.

export interface GlibcArena {
  readonly index: number;
  readonly fast_free_bytes: number;
  readonly rest_free_bytes: number;
  readonly system_bytes: number;
  readonly max_system_bytes: number;
}

export interface MallocInfo {
  readonly arenas: readonly GlibcArena[];
  readonly mmap_bytes: number;
}

function attribute(tag: string, name: string): number {
  const match = new RegExp(`\\b${name}="(\\d+)"`).exec(tag);
  return match ? Number(match[1]) : 0;
}

function findTag(body: string, element: string, type: string): string {
  const match = new RegExp(`<${element} type="${type}"[^>]*/>`).exec(body);
  return match ? match[0] : '';
}

/** Null when `xml` is not malloc_info output. */
export function parseMallocInfo(xml: string): MallocInfo | null {
  if (!/^<malloc version="\d+">/.test(xml.trimStart())) return null;
  const arenas: GlibcArena[] = [];
  const heapPattern = /<heap nr="(\d+)">([\s\S]*?)<\/heap>/g;
  for (let match = heapPattern.exec(xml); match; match = heapPattern.exec(xml)) {
    const body = match[2] ?? '';
    arenas.push({
      index: Number(match[1]),
      fast_free_bytes: attribute(findTag(body, 'total', 'fast'), 'size'),
      rest_free_bytes: attribute(findTag(body, 'total', 'rest'), 'size'),
      system_bytes: attribute(findTag(body, 'system', 'current'), 'size'),
      max_system_bytes: attribute(findTag(body, 'system', 'max'), 'size'),
    });
  }
  const tail = xml.slice(xml.lastIndexOf('</heap>') + 1);
  return { arenas, mmap_bytes: attribute(findTag(tail, 'total', 'mmap'), 'size') };
}
