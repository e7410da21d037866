// Sampled block ownership: which thread allocated a sampled block, and the
// bytes it stands for. A bounded open-addressing table with a counting filter
// in front, so that the common free (of an unsampled block) costs one load
// from a 32 KiB array that stays in L1. Lock-free; when the table is full the sample is
// dropped and counted.
#pragma once

#include <atomic>
#include <cstdint>

namespace leakscope {

struct OwnerRecord {
  uint32_t slot_index;
  uint32_t generation;
  uint64_t weight_bytes;
  uint64_t task_tag;  // the task polled when it was allocated (tasks.h), 0 none
  uint32_t stack_id;  // where it was allocated (stacks.h), 0 unknown
};

class OwnershipTable {
 public:
  static constexpr uint32_t kSlotBits = 19;   // 512 Ki entries of 32 bytes, 16 MiB at most
  static constexpr uint32_t kFilterBits = 15; // 32 Ki one-byte counters
  static constexpr uint32_t kMaxProbe = 16;

  // Any thread, sample path only.
  bool insert(uintptr_t block, const OwnerRecord& owner);
  // Hot path (every free): one load from the filter; false means `block`
  // was certainly not sampled.
  bool might_hold(uintptr_t block) const {
    return filter_[hash(block) >> (64 - kFilterBits)].load(std::memory_order_relaxed) != 0;
  }
  // Removes `block` and tells its owner; false when it was not sampled.
  bool take(uintptr_t block, OwnerRecord* owner);
  // Forgets every block. Only while no hook is inserting (a ledger restart).
  void clear();

 private:
  struct Entry {
    std::atomic<uintptr_t> key;
    std::atomic<uint64_t> value;
    std::atomic<uint64_t> task_tag;
    std::atomic<uint32_t> stack_id;
  };
  static constexpr uintptr_t kEmpty = 0;
  static constexpr uintptr_t kTombstone = 1;

  static uint64_t hash(uintptr_t block) { return (block >> 4) * 0x9E3779B97F4A7C15ull; }
  static uint64_t pack(const OwnerRecord& r);
  static OwnerRecord unpack(uint64_t v);

  Entry entries_[1u << kSlotBits];
  std::atomic<uint8_t> filter_[1u << kFilterBits];
};

extern OwnershipTable g_ownership;

}  // namespace leakscope
