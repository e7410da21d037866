#include "agent_heap.h"

#include <pthread.h>
#include <sys/mman.h>

#include <cstring>

namespace leakscope {

AgentHeap g_agent_heap;

namespace {

constexpr size_t kRegionBytes = size_t(256) << 20;  // address space only: pages are touched as used
constexpr size_t kPage = 4096;
constexpr size_t kHeader = 16;
constexpr uint32_t kClasses = 12;  // 16 B << 0 .. 11: up to 32 KiB
constexpr size_t kSlab = 64 * 1024;  // carved at a time for a class
constexpr uint32_t kRunKind = 0xFFFF;
// The word just before a block: bit 3 set, which no glibc chunk size has,
// so that the LD_PRELOAD shim's free takes it off its fast path
// (preload/sample_header.h), where owns() finds it.
constexpr uint64_t kTag = 0x6c73686561700008ull;

pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

struct Header {
  uint32_t kind;   // size class, or kRunKind
  uint32_t pages;  // a run's pages, its header page included
  uint64_t tag;
};
static_assert(sizeof(Header) == kHeader, "a header is 16 bytes");

Header* header_of(const void* block) { return reinterpret_cast<Header*>(uintptr_t(block) - kHeader); }

size_t class_bytes(uint32_t k) { return size_t(16) << k; }

uint32_t class_for(size_t size) {
  uint32_t k = 0;
  while (k < kClasses && class_bytes(k) < size) ++k;
  return k;  // kClasses: too large for a class
}

}  // namespace

// A run of pages: in use, the block starts one page in (page-aligned) and
// the header sits at the end of that first page; free, this node sits at its
// start.
struct Run {
  Run* next;
  size_t pages;
};

bool AgentHeap::reserve() {
  if (bytes_.load(std::memory_order_relaxed) != 0) return true;
  void* region = mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) return false;
  next_ = uintptr_t(region);
  base_.store(uintptr_t(region), std::memory_order_relaxed);
  bytes_.store(kRegionBytes, std::memory_order_release);
  return true;
}

void* AgentHeap::carve(size_t bytes, size_t alignment) {
  const uintptr_t at = (next_ + alignment - 1) & ~(uintptr_t(alignment) - 1);
  if (at + bytes > base_.load(std::memory_order_relaxed) + bytes_.load(std::memory_order_relaxed)) return nullptr;
  next_ = at + bytes;
  return reinterpret_cast<void*>(at);
}

void* AgentHeap::allocate(size_t size, size_t alignment) {
  if (alignment > kPage || (alignment & (alignment - 1)) != 0) return nullptr;
  if (size == 0) size = 1;
  if (size > kRegionBytes) return nullptr;
  pthread_mutex_lock(&lock);
  void* block = nullptr;
  if (reserve()) {
    const uint32_t k = alignment <= kHeader ? class_for(size) : kClasses;
    if (k < kClasses) {
      if (free_small_[k] == nullptr) {
        // A slab for the class: slots of header + block.
        const size_t slot = kHeader + class_bytes(k);
        if (char* slab = static_cast<char*>(carve(kSlab > slot ? kSlab : slot, kPage))) {
          const size_t slots = (kSlab > slot ? kSlab : slot) / slot;
          for (size_t i = slots; i-- > 0;) {
            void* b = slab + i * slot + kHeader;
            *header_of(b) = Header{k, 0, kTag};
            *static_cast<void**>(b) = free_small_[k];
            free_small_[k] = b;
          }
        }
      }
      block = free_small_[k];
      if (block != nullptr) {
        free_small_[k] = *static_cast<void**>(block);
        memset(block, 0, size);
      }
    } else {
      const size_t pages = 1 + (size + kPage - 1) / kPage;
      Run** link = &free_runs_;
      while (*link != nullptr && (*link)->pages < pages) link = &(*link)->next;
      char* run = nullptr;
      if (Run* found = *link) {
        *link = found->next;
        if (found->pages > pages) {
          Run* rest = reinterpret_cast<Run*>(reinterpret_cast<char*>(found) + pages * kPage);
          *rest = Run{free_runs_, found->pages - pages};
          free_runs_ = rest;
        }
        run = reinterpret_cast<char*>(found);
      } else {
        run = static_cast<char*>(carve(pages * kPage, kPage));
      }
      if (run != nullptr) {
        block = run + kPage;  // zero: fresh, or given back to the kernel when freed
        *header_of(block) = Header{kRunKind, uint32_t(pages), kTag};
      }
    }
  }
  pthread_mutex_unlock(&lock);
  return block;
}

size_t AgentHeap::usable(const void* block) const {
  const Header* h = header_of(block);
  return h->kind == kRunKind ? (size_t(h->pages) - 1) * kPage : class_bytes(h->kind);
}

void AgentHeap::release(void* block) {
  Header* h = header_of(block);
  if (h->tag != kTag) return;  // not a block of ours (a double free): leave it
  pthread_mutex_lock(&lock);
  if (h->kind == kRunKind) {
    const size_t pages = h->pages;
    char* run = static_cast<char*>(block) - kPage;
    madvise(run, pages * kPage, MADV_DONTNEED);  // back to the kernel; zero when touched again
    *reinterpret_cast<Run*>(run) = Run{free_runs_, pages};
    free_runs_ = reinterpret_cast<Run*>(run);
  } else if (h->kind < kClasses) {
    *static_cast<void**>(block) = free_small_[h->kind];
    free_small_[h->kind] = block;
  }
  pthread_mutex_unlock(&lock);
}

void* AgentHeap::reallocate(void* block, size_t size, void* (*fallback_malloc)(size_t)) {
  if (size == 0) {  // glibc's realloc(p, 0) frees p and returns NULL
    release(block);
    return nullptr;
  }
  const size_t have = usable(block);
  if (size <= have && size > have / 2) return block;
  void* moved = allocate(size);
  if (moved == nullptr) moved = fallback_malloc(size);
  if (moved == nullptr) return nullptr;
  memcpy(moved, block, have < size ? have : size);
  release(block);
  return moved;
}

}  // namespace leakscope
