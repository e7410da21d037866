#include "ledger.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <ctime>
#include <sys/syscall.h>
#include <unistd.h>

#include "ownership.h"
#include "stacks.h"
#include "tasks.h"

namespace leakscope {

__thread ThreadState t_state __attribute__((tls_model("initial-exec")));
Ledger g_ledger;
std::atomic<bool> g_accounting{false};
std::atomic<bool> g_accounting_ended{false};

namespace {

inline uint64_t load(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

uint64_t next_random(ThreadState& ts) {
  // xorshift64*: no syscall, no lock, good enough to space samples.
  uint64_t x = ts.rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  ts.rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

// Bytes until the next sample: exponential with the configured mean, so that
// sampling is a Poisson process over allocated bytes (as tcmalloc and
// heapprofd do) and every byte has the same chance to be sampled.
int64_t next_sample_distance(ThreadState& ts) {
  const uint64_t mean = g_ledger.sample_interval;
  if (mean == 0) return 0;
  const double u = (double(next_random(ts) >> 11) + 1.0) / 9007199254740993.0;  // (0,1]
  const double d = -std::log(u) * double(mean);
  return d < 1.0 ? 1 : int64_t(d);
}

// The bytes a sampled block stands for: its size / P(sampled), where the
// countdown moved on by `requested` bytes (the block's size, or what the
// program asked for when the countdown runs before allocating). Unbiased for
// any mix of block sizes.
uint64_t sample_weight(size_t requested, size_t usable) {
  const uint64_t mean = g_ledger.sample_interval;
  if (mean == 0) return usable;
  const double x = double(requested) / double(mean);
  // 1 - e^-x; for the small blocks that are most of them, its series to x^4
  // (relative error under 2e-7 below 1/16), which costs less than exp.
  const double p = x < 0.0625 ? x * (1.0 - x / 2.0 * (1.0 - x / 3.0 * (1.0 - x / 4.0))) : 1.0 - std::exp(-x);
  return p <= 0.0 ? usable : uint64_t(double(usable) / p + 0.5);
}

// How many blocks a sample of `usable` bytes stands for: 1 / P(sampled),
// which has a fraction where P is large (a 76 KiB block sampled every 64 KiB
// stands for 1.44). The thread carries the fraction over to its next sample,
// so that its count stays within one block of the sum of 1 / P.
uint64_t blocks_represented(float& carry, const OwnerRecord& owner, size_t usable) {
  if (usable == 0 || owner.weight_bytes <= usable) return 1;
  const double blocks = double(owner.weight_bytes) / double(usable) + double(carry);
  const uint64_t whole = uint64_t(blocks);
  carry = float(blocks - double(whole));
  return whole;
}

}  // namespace

OwnerRecord next_sample(ThreadState& ts, size_t requested, size_t usable) {
  ts.bytes_until_sample = next_sample_distance(ts);
  const uint64_t weight = sample_weight(requested, usable);
  const uint32_t stack = g_stacks.wants(weight, next_random(ts)) ? g_stacks.capture() : 0;
  return OwnerRecord{ts.slot_index, ts.generation, weight, ts.task_tag, stack};
}

void restart_countdown(ThreadState& ts) { ts.bytes_until_sample = next_sample_distance(ts); }

void forward_for_good(ThreadState& ts) {
  ts.busy = 1;
  ts.bytes_until_sample = INT64_MAX;
}

void count_sample(ThreadState& ts, const OwnerRecord& owner, size_t usable) {
  detail::bump(ts.slot->samples_taken, 1);
  if (g_ledger.counts_sampled) {
    detail::bump(ts.slot->alloc_count, blocks_represented(ts.alloc_blocks_carry, owner, usable));
    detail::bump(ts.slot->alloc_bytes, owner.weight_bytes);
  }
  ts.slot->sampled_live_bytes.fetch_add(int64_t(owner.weight_bytes), std::memory_order_relaxed);
  if (owner.task_tag != 0) g_tasks.sample_taken(owner.task_tag, owner.weight_bytes);
  g_stacks.sampled(owner.stack_id, owner.weight_bytes, usable);
  if (owner.task_tag != 0 && owner.stack_id != 0) g_stacks.site_sampled(TaskRegistry::site_of(owner.task_tag), owner.stack_id, owner.weight_bytes);
}

void take_sample(ThreadState& ts, void* block, size_t requested, size_t usable) {
  const OwnerRecord owner = next_sample(ts, requested, usable);
  if (!g_ownership.insert(uintptr_t(block), owner)) {
    g_ledger.dropped_events.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  count_sample(ts, owner, usable);
}

// Runs on the thread that frees the block, which has a slot by then.
void settle_sample(ThreadState& ts, const OwnerRecord& owner, size_t usable) {
  detail::bump(ts.slot->samples_settled, 1);
  if (g_ledger.counts_sampled) {
    detail::bump(ts.slot->free_count, blocks_represented(ts.free_blocks_carry, owner, usable));
    detail::bump(ts.slot->free_bytes, owner.weight_bytes);
  }
  if (owner.task_tag != 0) g_tasks.sample_freed(owner.task_tag, owner.weight_bytes);
  g_stacks.freed(owner.stack_id, owner.weight_bytes, usable);
  if (owner.task_tag != 0 && owner.stack_id != 0) g_stacks.site_freed(TaskRegistry::site_of(owner.task_tag), owner.stack_id, owner.weight_bytes);
  ThreadSlot& slot = g_ledger.slots[owner.slot_index];
  const bool owner_alive = slot.generation.load(std::memory_order_relaxed) == owner.generation &&
                           slot.state.load(std::memory_order_relaxed) >= kSlotLive;
  if (!owner_alive) return;  // the owner exited: nobody is left to hold its frees
  slot.sampled_live_bytes.fetch_sub(int64_t(owner.weight_bytes), std::memory_order_relaxed);
  if (&slot != ts.slot) {
    slot.remote_freed_bytes.fetch_add(owner.weight_bytes, std::memory_order_relaxed);
    slot.remote_freed_count.fetch_add(1, std::memory_order_relaxed);
  }
}

int32_t current_tid() { return int32_t(syscall(SYS_gettid)); }

uint64_t wall_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

void ledger_init(uint64_t sample_interval, LedgerScope scope, bool counts_sampled) {
  g_ledger.sample_interval = sample_interval;
  g_ledger.counts_sampled = counts_sampled;
  g_ledger.scope.store(scope);
}

void ledger_restart_since(uint64_t now_ms) {
  g_ownership.clear();
  g_stacks.restart_live();
  const uint32_t used = std::min(g_ledger.high_water.load(), kMaxThreadSlots);
  for (uint32_t i = 0; i < used; ++i) {
    ThreadSlot& slot = g_ledger.slots[i];
    for (auto* a : {&slot.alloc_count, &slot.alloc_bytes, &slot.free_count, &slot.free_bytes, &slot.samples_taken,
                    &slot.samples_settled, &slot.remote_freed_bytes, &slot.remote_freed_count})
      a->store(0, std::memory_order_relaxed);
    slot.sampled_live_bytes.store(0, std::memory_order_relaxed);
  }
  ExitedTotals& ex = g_ledger.exited;
  for (auto* a : {&ex.alloc_count, &ex.alloc_bytes, &ex.free_count, &ex.free_bytes, &ex.samples_taken, &ex.samples_settled})
    a->store(0);
  g_ledger.since_ms.store(now_ms);
  g_ledger.scope.store(kLedgerSince);
}

void ledger_stop() { g_ledger.scope.store(kLedgerOff); }

bool settle_if_sampled(ThreadState& ts, void* block, size_t usable) {
  OwnerRecord owner;
  if (__builtin_expect(!g_ownership.take(uintptr_t(block), &owner), 1)) return false;
  settle_sample(ts, owner, usable);
  return true;
}

ThreadSlot* claim_slot(ThreadState& ts, uintptr_t start_routine, int32_t creator_tid) {
  if (ts.slot != nullptr) return ts.slot;
  uint32_t index = g_ledger.high_water.fetch_add(1, std::memory_order_relaxed);
  if (index >= kMaxThreadSlots) {
    g_ledger.high_water.store(kMaxThreadSlots, std::memory_order_relaxed);
    // Reuse a slot the sampler freed after its thread vanished.
    index = kMaxThreadSlots;
    for (uint32_t i = 0; i < kMaxThreadSlots; ++i) {
      uint32_t expected = kSlotFree;
      if (g_ledger.slots[i].state.compare_exchange_strong(expected, kSlotClaiming)) {
        index = i;
        break;
      }
    }
    if (index == kMaxThreadSlots) {
      g_ledger.dropped_events.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
  } else {
    g_ledger.slots[index].state.store(kSlotClaiming, std::memory_order_relaxed);
  }
  ThreadSlot& slot = g_ledger.slots[index];
  const int32_t tid = current_tid();
  slot.tid.store(tid, std::memory_order_relaxed);
  slot.creator_tid.store(creator_tid, std::memory_order_relaxed);
  slot.start_routine.store(start_routine, std::memory_order_relaxed);
  slot.created_ms.store(wall_ms(), std::memory_order_relaxed);
  slot.exited_ms.store(0, std::memory_order_relaxed);
  slot.state.store(kSlotLive, std::memory_order_release);
  ts.slot_index = index;
  ts.generation = slot.generation.load(std::memory_order_relaxed);
  ts.rng = (uint64_t(uint32_t(tid)) << 32 | index) * 0x9E3779B97F4A7C15ull | 1;
  ts.bytes_until_sample = next_sample_distance(ts);
  slot.countdown_at.store(uintptr_t(&ts.bytes_until_sample), std::memory_order_relaxed);
  ts.slot = &slot;
  return &slot;
}

bool claim_counting_slot(ThreadState& ts) {
  if (!g_accounting.load(std::memory_order_relaxed)) {
    if (g_accounting_ended.load(std::memory_order_relaxed)) forward_for_good(ts);
    return false;
  }
  if (claim_slot(ts, 0, 0) != nullptr) return true;
  ts.slot = &g_ledger.overflow;  // counted nowhere
  ts.bytes_until_sample = INT64_MAX;
  return false;
}

void mark_thread_exited(ThreadState& ts) {
  if (ts.slot == nullptr) return;
  ts.slot->exited_ms.store(wall_ms(), std::memory_order_relaxed);
  ts.slot->state.store(kSlotExited, std::memory_order_release);
}

void recycle_slot(uint32_t index) {
  ThreadSlot& slot = g_ledger.slots[index];
  ExitedTotals& ex = g_ledger.exited;
  ex.alloc_count.fetch_add(load(slot.alloc_count));
  ex.alloc_bytes.fetch_add(load(slot.alloc_bytes));
  ex.free_count.fetch_add(load(slot.free_count));
  ex.free_bytes.fetch_add(load(slot.free_bytes));
  ex.samples_taken.fetch_add(load(slot.samples_taken));
  ex.samples_settled.fetch_add(load(slot.samples_settled));
  // Records of this thread's blocks still live carry the old generation:
  // their frees are settled against nobody.
  ex.threads.fetch_add(1);
  for (auto* a : {&slot.alloc_count, &slot.alloc_bytes, &slot.free_count, &slot.free_bytes, &slot.samples_taken,
                  &slot.samples_settled, &slot.remote_freed_bytes, &slot.remote_freed_count})
    a->store(0, std::memory_order_relaxed);
  slot.sampled_live_bytes.store(0, std::memory_order_relaxed);
  slot.generation.store((slot.generation.load() + 1) & 0xFFF);  // 12 bits, as packed
  slot.state.store(kSlotFree, std::memory_order_release);
}

}  // namespace leakscope
