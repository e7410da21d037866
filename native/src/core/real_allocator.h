// The malloc family a set of hooks forwards to: the allocator the program's
// calls reached before leakscope (glibc, or a preloaded or linked jemalloc /
// mimalloc). The LD_PRELOAD shim and the Node addon's GOT hooks each fill
// one.
#pragma once

#include <cstddef>

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
};

}  // namespace leakscope
