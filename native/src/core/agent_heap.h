// The agent's own heap. What the agent's threads (sampler, server) allocate
// never reaches the program's allocator: a thread's first malloc makes
// glibc give it an arena of its own and jemalloc a thread cache, an arena
// and perhaps a background thread, which the agent would then report as the
// program's (three glibc arenas in a one-threaded program; redis with two
// more jemalloc arenas and background threads than it has alone).
//
// One region of address space, reserved once (MAP_NORESERVE, touched as
// used): blocks of up to 32 KiB in power-of-two classes with free lists,
// larger ones as runs of pages given back to the kernel when freed. Frees
// find their way here by address (owns), from any thread, so a block that
// libc or the program frees for an agent thread is still handled. One lock:
// only the agent's threads allocate here, a few thousand times a second at
// most. When the region is full, callers fall back to the real allocator.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace leakscope {

class AgentHeap {
 public:
  // Any thread, hot path of frees: whether `block` is one of ours. False
  // before the region exists.
  bool owns(const void* block) const {
    return uintptr_t(block) - base_.load(std::memory_order_relaxed) < bytes_.load(std::memory_order_relaxed);
  }
  // A zeroed block of `size` bytes aligned to `alignment` (a power of two,
  // at most a page); null when the region is full or cannot be made.
  void* allocate(size_t size, size_t alignment = 16);
  void release(void* block);
  size_t usable(const void* block) const;
  // realloc's contract on one of our blocks: kept or moved within the
  // agent's heap, or, when it has no room, moved to a block of
  // `fallback_malloc` (null, and the block kept, when that fails too).
  void* reallocate(void* block, size_t size, void* (*fallback_malloc)(size_t));

 private:
  bool reserve();  // lock held
  void* carve(size_t bytes, size_t alignment);  // lock held

  std::atomic<uintptr_t> base_;
  std::atomic<size_t> bytes_;
  uintptr_t next_;  // bump pointer
  void* free_small_[12];  // classes 16 B .. 32 KiB
  struct Run* free_runs_;
};

// Zero in .bss, never constructed: usable before the program's constructors.
extern AgentHeap g_agent_heap;

}  // namespace leakscope
