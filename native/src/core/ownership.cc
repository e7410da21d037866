#include "ownership.h"

namespace leakscope {

OwnershipTable g_ownership;

// value = weight (40 bits) | generation (12 bits) | slot index (12 bits)
uint64_t OwnershipTable::pack(const OwnerRecord& r) {
  uint64_t weight = r.weight_bytes > 0xFFFFFFFFFFull ? 0xFFFFFFFFFFull : r.weight_bytes;
  return (weight << 24) | (uint64_t(r.generation & 0xFFF) << 12) | (r.slot_index & 0xFFF);
}

OwnerRecord OwnershipTable::unpack(uint64_t v) {
  return OwnerRecord{uint32_t(v & 0xFFF), uint32_t((v >> 12) & 0xFFF), v >> 24, 0, 0};
}

namespace {

// Down by one, never below zero: a ledger restart (clear) may zero a counter
// between another thread's count up and its count down, and a counter that
// wrapped to 255 would read as "maybe sampled" (and full) until the next one.
void count_down_to_zero(std::atomic<uint8_t>& counter) {
  uint8_t seen = counter.load(std::memory_order_relaxed);
  while (seen != 0 && !counter.compare_exchange_weak(seen, uint8_t(seen - 1), std::memory_order_relaxed)) {
  }
}

}  // namespace

bool OwnershipTable::insert(uintptr_t block, const OwnerRecord& owner) {
  const uint64_t h = hash(block);
  std::atomic<uint8_t>& counter = filter_[h >> (64 - kFilterBits)];
  if (counter.load(std::memory_order_relaxed) == 0xFF) return false;  // saturated: drop the sample
  // Count in the filter before the key is visible: a free that finds the key
  // must never have seen a zero counter for it.
  counter.fetch_add(1, std::memory_order_relaxed);
  const uint32_t mask = (1u << kSlotBits) - 1;
  uint32_t index = uint32_t(h >> (64 - kSlotBits));
  for (uint32_t probe = 0; probe < kMaxProbe; ++probe, index = (index + 1) & mask) {
    Entry& e = entries_[index];
    uintptr_t seen = e.key.load(std::memory_order_relaxed);
    if (seen != kEmpty && seen != kTombstone) continue;
    // The value is written after the key is claimed; nobody reads it before
    // the allocation that owns `block` has returned to the program.
    if (e.key.compare_exchange_strong(seen, block, std::memory_order_acq_rel)) {
      e.task_tag.store(owner.task_tag, std::memory_order_relaxed);
      e.stack_id.store(owner.stack_id, std::memory_order_relaxed);
      e.value.store(pack(owner), std::memory_order_release);
      return true;
    }
  }
  count_down_to_zero(counter);
  return false;
}

bool OwnershipTable::take(uintptr_t block, OwnerRecord* owner) {
  const uint64_t h = hash(block);
  std::atomic<uint8_t>& counter = filter_[h >> (64 - kFilterBits)];
  if (counter.load(std::memory_order_relaxed) == 0) return false;
  const uint32_t mask = (1u << kSlotBits) - 1;
  uint32_t index = uint32_t(h >> (64 - kSlotBits));
  for (uint32_t probe = 0; probe < kMaxProbe; ++probe, index = (index + 1) & mask) {
    Entry& e = entries_[index];
    uintptr_t seen = e.key.load(std::memory_order_acquire);
    if (seen == kEmpty) return false;
    if (seen != block) continue;
    // Only the thread freeing `block` can be here: the allocator cannot hand
    // the address out again before the free that follows this call.
    *owner = unpack(e.value.load(std::memory_order_acquire));
    owner->task_tag = e.task_tag.load(std::memory_order_relaxed);
    owner->stack_id = e.stack_id.load(std::memory_order_relaxed);
    e.key.store(kTombstone, std::memory_order_release);
    count_down_to_zero(counter);
    return true;
  }
  return false;
}

void OwnershipTable::clear() {
  for (auto& counter : filter_) counter.store(0, std::memory_order_relaxed);
  for (Entry& e : entries_) e.key.store(kEmpty, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

}  // namespace leakscope
