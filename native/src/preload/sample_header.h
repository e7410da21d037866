// Sampled blocks that carry their owner (LD_PRELOAD over glibc). A sampled
// block is allocated 32 bytes larger (or its alignment, if larger), and the
// program gets the address after a header that holds the owner record. So a
// free finds a sampled block's owner without a table lookup, and taking a
// sample writes no memory shared between threads but the owner's counters.
//
// A free tells such a block from the others by the word just before it,
// which it reads anyway for the block's size: glibc keeps the chunk's size
// there, always a multiple of 16 (MALLOC_ALIGNMENT on x86-64, glibc
// malloc/malloc.c "malloc_chunk details"), so its bit 3 is never set. Ours
// has bit 3 set, in a marker made of the block's address and a key random to
// the process, and is cleared again when the block is freed.
//
// Every call on such a block must come through the hooks, which is what
// glibc's malloc replacement contract already asks of an interposer (glibc
// manual, "Replacing malloc"): a library that reaches glibc's own free
// directly (RTLD_DEEPBIND) would hand glibc our header.
// LEAKSCOPE_SAMPLE_HEADERS=off keeps samples in the ownership table instead.
#pragma once

#include <sys/random.h>
#include <time.h>

#include <cstddef>
#include <cstdint>

#include "../core/ownership.h"

namespace leakscope {

struct SampleHeader {
  uint64_t task_tag;
  uint64_t weight_and_stack;  // weight (40 bits) | stack id << 40
  uint32_t owner;   // slot index | generation << 16
  uint32_t offset;  // bytes from the allocator's block to the program's
  uint64_t marker;  // where glibc keeps a chunk's size

  static constexpr size_t kBytes = 32;
  static constexpr uint64_t kWeightMask = (uint64_t(1) << 40) - 1;
  static constexpr size_t kMaxAlignment = size_t(1) << 20;

  // How far into the allocator's block the program's starts, for a call
  // that asked for `alignment` (0: none): 0 when the call is not sampled
  // this way (an alignment that is no power of two, or over 1 MiB).
  static size_t offset_for(size_t alignment) {
    if (alignment <= kBytes) return alignment == 0 || (alignment & (alignment - 1)) == 0 ? kBytes : 0;
    return (alignment & (alignment - 1)) == 0 && alignment <= kMaxAlignment ? alignment : 0;
  }

  // Hot path: whether the word before a block may be a marker at all.
  static bool may_be_marker(size_t word_before) { return (word_before & 8) != 0; }

  OwnerRecord owner_record() const {
    return OwnerRecord{owner & 0xFFFF, owner >> 16, weight_and_stack & kWeightMask, task_tag,
                       uint32_t(weight_and_stack >> 40)};
  }
};
static_assert(sizeof(SampleHeader) == SampleHeader::kBytes, "the header fills the 32 bytes before a block");

class SampleMarkers {
 public:
  // Before the first sample, once: a key of its own (not AT_RANDOM's bytes,
  // which are glibc's stack and pointer guards), without allocating.
  void init() {
    uint64_t key = 0;
    if (getrandom(&key, sizeof key, GRND_NONBLOCK) != ssize_t(sizeof key)) {
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      key = (uint64_t(now.tv_nsec) << 32 ^ uint64_t(now.tv_sec) ^ uintptr_t(&now)) * 0x9E3779B97F4A7C15ull;
    }
    key_ ^= key;
  }

  uint64_t marker_for(const void* block) const { return ((key_ ^ uintptr_t(block)) & ~uint64_t(15)) | 8; }

  // The header of `block` when it is a sampled block of ours, else null.
  SampleHeader* header_of(void* block, size_t word_before) const {
    if (!SampleHeader::may_be_marker(word_before) || word_before != marker_for(block)) return nullptr;
    return static_cast<SampleHeader*>(block) - 1;
  }

  // Writes the header of a sampled block `offset` bytes into `raw`; returns
  // the program's block.
  void* stamp(void* raw, size_t offset, const OwnerRecord& owner) const {
    void* block = static_cast<char*>(raw) + offset;
    SampleHeader* header = static_cast<SampleHeader*>(block) - 1;
    header->task_tag = owner.task_tag;
    const uint64_t weight = owner.weight_bytes > SampleHeader::kWeightMask ? SampleHeader::kWeightMask : owner.weight_bytes;
    header->weight_and_stack = weight | uint64_t(owner.stack_id) << 40;
    header->owner = (owner.slot_index & 0xFFFF) | (owner.generation << 16);
    header->offset = uint32_t(offset);
    header->marker = marker_for(block);
    return block;
  }

 private:
  uint64_t key_ = 0x6c65616b73636f70ull;  // replaced by init()
};

}  // namespace leakscope
