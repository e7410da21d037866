// The malloc family a set of hooks forwards to: the allocator the program's
// calls reached before leakscope (glibc, or a preloaded or linked jemalloc /
// mimalloc). The LD_PRELOAD shim and the Node addon's GOT hooks each fill
// one, and both size blocks through it on their hot paths.
#pragma once

#include <dlfcn.h>

#include <cstddef>
#include <cstring>

namespace leakscope {

struct RealAllocator {
  void* (*malloc)(size_t);
  void (*free)(void*);
  void* (*calloc)(size_t, size_t);
  void* (*realloc)(void*, size_t);
  int (*posix_memalign)(void**, size_t, size_t);
  void* (*aligned_alloc)(size_t, size_t);
  void* (*memalign)(size_t, size_t);
  void* (*valloc)(size_t);
  void* (*pvalloc)(size_t);
  size_t (*malloc_usable_size)(void*);

  // True when malloc is glibc's own: then a block's usable size is read from
  // its chunk header, one word before the block, instead of calling
  // malloc_usable_size, whose in-use check reads the *next* chunk's header:
  // a second cache line on every call, the agent's largest cost
  // (docs/benchmarks.md). Layout: glibc malloc/malloc.c, "malloc_chunk
  // details": size field at mem - SIZE_SZ, low 3 bits are flags, IS_MMAPPED
  // is 0x2; in-use chunks lend their successor's prev_size word, so usable
  // is chunksize - SIZE_SZ, or chunksize - 2 * SIZE_SZ when mmapped.
  bool glibc_chunks;

  // Hot path: the usable size of a live block of this allocator.
  size_t usable_size(void* block) const {
    if (__builtin_expect(glibc_chunks, 1)) return glibc_usable(size_field(block));
    return malloc_usable_size(block);
  }

  // The word before a glibc block: its chunk's size field.
  static size_t size_field(const void* block) { return static_cast<const size_t*>(block)[-1]; }
  static size_t glibc_usable(size_t size_field) {
    const size_t chunk = size_field & ~size_t(7);
    return (size_field & 2) ? chunk - 2 * sizeof(size_t) : chunk - sizeof(size_t);
  }
};

// glibc's malloc with no debugging layer in front (libc_malloc_debug.so
// would be the object defining malloc then, and keeps its own headers).
inline bool forwarding_to_glibc(void* forwarded_malloc) {
  Dl_info info{};
  if (dladdr(forwarded_malloc, &info) == 0 || info.dli_fname == nullptr) return false;
  const char* slash = strrchr(info.dli_fname, '/');
  return strncmp(slash ? slash + 1 : info.dli_fname, "libc.so", 7) == 0;
}

}  // namespace leakscope
