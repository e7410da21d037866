// The agent's own allocations where it is not the program's malloc (the
// injected library and the Node addon, whose hooks are GOT entries in the
// program's objects, not in their own): linked with -Wl,--wrap for the
// malloc family, so that every call the agent's code makes (and the static
// libstdc++ inside it) comes here. An agent thread's blocks come from the
// agent's heap; a program thread's (the agent at work on it) from the
// program's allocator, as before; a block goes back where it came from.
#include <stddef.h>

#include "agent_heap.h"
#include "ledger.h"

using leakscope::g_agent_heap;
using leakscope::t_state;

extern "C" {
void* __real_malloc(size_t);
void __real_free(void*);
void* __real_calloc(size_t, size_t);
void* __real_realloc(void*, size_t);
int __real_posix_memalign(void**, size_t, size_t);
void* __real_aligned_alloc(size_t, size_t);
size_t __real_malloc_usable_size(void*);

void* __wrap_malloc(size_t size) {
  if (t_state.internal) {
    if (void* block = g_agent_heap.allocate(size)) return block;
  }
  return __real_malloc(size);
}

void __wrap_free(void* block) {
  if (g_agent_heap.owns(block)) return g_agent_heap.release(block);
  __real_free(block);
}

void* __wrap_calloc(size_t count, size_t size) {
  size_t total;
  if (t_state.internal && !__builtin_mul_overflow(count, size, &total)) {
    if (void* block = g_agent_heap.allocate(total)) return block;  // zeroed
  }
  return __real_calloc(count, size);
}

void* __wrap_realloc(void* block, size_t size) {
  if (block == nullptr) return __wrap_malloc(size);
  if (!g_agent_heap.owns(block)) return __real_realloc(block, size);
  return g_agent_heap.reallocate(block, size, __real_malloc);
}

int __wrap_posix_memalign(void** out, size_t alignment, size_t size) {
  if (t_state.internal) {
    if (void* block = g_agent_heap.allocate(size, alignment < 16 ? 16 : alignment)) {
      *out = block;
      return 0;
    }
  }
  return __real_posix_memalign(out, alignment, size);
}

void* __wrap_aligned_alloc(size_t alignment, size_t size) {
  if (t_state.internal) {
    if (void* block = g_agent_heap.allocate(size, alignment < 16 ? 16 : alignment)) return block;
  }
  return __real_aligned_alloc(alignment, size);
}

size_t __wrap_malloc_usable_size(void* block) {
  if (g_agent_heap.owns(block)) return g_agent_heap.usable(block);
  return __real_malloc_usable_size(block);
}
}  // extern "C"
