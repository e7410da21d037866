// Per-thread heap ledger: exact allocation counters per thread and the
// sampled ownership of blocks, from which remote-freed and unreclaimed bytes
// follow. The functions marked "hot path" run inside every malloc and free of
// the target: no lock, no syscall, no clock read, no allocation there.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "ownership.h"

namespace leakscope {

constexpr uint32_t kMaxThreadSlots = 4096;

enum SlotState : uint32_t { kSlotFree = 0, kSlotClaiming = 1, kSlotLive = 2, kSlotExited = 3 };

// One per thread that entered the allocator (or was started through
// pthread_create). The owner writes the first cache line alone; other threads
// write the second one only when they free one of the owner's sampled blocks.
struct alignas(64) ThreadSlot {
  // Owner-written: relaxed load + store, no locked instruction.
  std::atomic<uint64_t> alloc_count{0};
  std::atomic<uint64_t> alloc_bytes{0};
  std::atomic<uint64_t> free_count{0};
  std::atomic<uint64_t> free_bytes{0};
  std::atomic<uint64_t> samples_taken{0};    // blocks this thread sampled
  std::atomic<uint64_t> samples_settled{0};  // sampled blocks (anyone's) this thread freed

  // Written by any thread, on sampled blocks only.
  alignas(64) std::atomic<uint64_t> remote_freed_bytes{0};
  std::atomic<uint64_t> remote_freed_count{0};
  std::atomic<int64_t> sampled_live_bytes{0};

  // Registry data, written when the slot is claimed or the thread exits.
  alignas(64) std::atomic<uint32_t> state{kSlotFree};
  std::atomic<uint32_t> generation{0};
  std::atomic<int32_t> tid{0};
  std::atomic<int32_t> creator_tid{0};
  std::atomic<uintptr_t> start_routine{0};
  std::atomic<uint64_t> created_ms{0};
  std::atomic<uint64_t> exited_ms{0};
  // Where the thread's sampling countdown is (in its TLS), which its every
  // malloc moves: the sampler's sign of allocator calls when only samples
  // are counted (Sampler, calls_mark).
  std::atomic<uintptr_t> countdown_at{0};
};

// The calling thread's view of the ledger. Initial-exec TLS: reaching it is a
// fixed offset from %fs, no __tls_get_addr call that could allocate.
struct ThreadState {
  ThreadSlot* slot;
  int64_t bytes_until_sample;
  uint64_t task_tag;  // the task being polled on this thread (tasks.h), 0 none
  uint64_t rng;
  uint32_t slot_index;
  uint32_t generation;
  // Where only samples are counted: the fractions of a block that this
  // thread's samples stood for beyond whole blocks, allocated and freed,
  // carried over to its next one (blocks_represented).
  float alloc_blocks_carry;
  float free_blocks_carry;
  // Near the top of the thread's stack, where the agent saw the thread
  // start (0 unknown): bounds the frame-pointer walk (stacks.h).
  uintptr_t stack_hi;
  uint8_t busy;      // inside a hook already: forward without accounting
  uint8_t internal;  // one of the agent's own threads: never accounted
};

extern __thread ThreadState t_state __attribute__((tls_model("initial-exec")));

// The agent's own work on a program's thread: what it allocates and frees in
// this scope (both, never one) is not the program's and is not accounted.
class AgentWork {
 public:
  AgentWork() : was_busy_(t_state.busy) { t_state.busy = 1; }
  ~AgentWork() { t_state.busy = was_busy_; }
  AgentWork(const AgentWork&) = delete;
  AgentWork& operator=(const AgentWork&) = delete;

 private:
  uint8_t was_busy_;
};

// What the ledger counts. kLedgerAll: every allocation and free, the hooks
// were there from the start (preload, crate). kLedgerSince: allocations since
// `since_ms`, from hooks put in late (a Node process attached by pid): blocks
// from before are freed too, so frees are known only for the sampled blocks
// allocated since, and live bytes come from those samples. kLedgerOff:
// nothing reaches the ledger (no hooks, or dormant).
enum LedgerScope : uint32_t { kLedgerOff = 0, kLedgerAll = 1, kLedgerSince = 2 };

// Totals of threads whose slots were recycled after they exited.
struct ExitedTotals {
  std::atomic<uint64_t> alloc_count{0}, alloc_bytes{0}, free_count{0}, free_bytes{0};
  std::atomic<uint64_t> samples_taken{0}, samples_settled{0};
  std::atomic<uint32_t> threads{0};
};

struct Ledger {
  ThreadSlot slots[kMaxThreadSlots];
  std::atomic<uint32_t> high_water{0};
  ExitedTotals exited;
  std::atomic<uint64_t> dropped_events{0};
  // Where threads that found no free slot count: never reported.
  ThreadSlot overflow;
  // Mean bytes between samples; 0 samples every block (exact mode).
  uint64_t sample_interval = 0;
  // The sampled-counts build of the LD_PRELOAD shim: its hooks count only
  // samples, and the counts and bytes are the samples' estimates (each
  // sample stands for 1/P(sampled) blocks of its size). Exact with an
  // interval of 0, where every block is a sample.
  bool counts_sampled = false;
  std::atomic<uint32_t> scope{kLedgerAll};
  std::atomic<uint64_t> since_ms{0};  // kLedgerSince: when counting began
};

extern Ledger g_ledger;
extern std::atomic<bool> g_accounting;  // false: hooks forward, nothing more
extern std::atomic<bool> g_accounting_ended;  // a forked child: false for good

// Hot path: called by the hooks after the real allocator returned `block`.
// Samples go to the ownership table (g_ownership).
inline void on_alloc(ThreadState& ts, void* block, size_t usable);
// Hot path: called by the hooks before the real allocator frees `block`.
inline void on_free(ThreadState& ts, void* block, size_t usable);
// Hot path of hooks put in late (kLedgerSince): only a sampled block's free
// is known to be of a block allocated since.
inline void on_free_sampled(ThreadState& ts, void* block);

// The counts alone, for hooks that run the sampling countdown themselves
// (detail::count_down): the LD_PRELOAD shim, before allocating, so that a
// sample can carry a header (preload/sample_header.h), and the crate.
// count_alloc and count_free claim a slot for a thread without one; the _in
// forms take the thread's slot.
inline ThreadSlot* count_alloc(ThreadState& ts, size_t usable);
inline ThreadSlot* count_free(ThreadState& ts, size_t usable);
inline void count_alloc_in(ThreadSlot& slot, size_t usable);
inline void count_free_in(ThreadSlot& slot, size_t usable);

// The rare parts of the hot path, out of line. The countdown moved on by
// `requested` bytes for the sampled block, of `usable` bytes.
void take_sample(ThreadState& ts, void* block, size_t requested, size_t usable);
// `usable` is the block's usable size, which the counts of the
// sampled-counts build need (Ledger::counts_sampled); callers in a ledger
// whose counts are not sampled may leave it 0.
bool settle_if_sampled(ThreadState& ts, void* block, size_t usable = 0);
// A sample taken (the countdown starts again): the owner record of a block
// of `usable` bytes, of which the program asked for `requested`. Counted
// once the record is kept (count_sample), settled when the block is freed.
OwnerRecord next_sample(ThreadState& ts, size_t requested, size_t usable);
// The countdown to the next sample starts again, no sample taken.
void restart_countdown(ThreadState& ts);
// The thread's hooks forward from now on and count nothing (an agent
// thread, a forked child's): the guard set, and a countdown that never runs
// out, so that no call of it takes the slow path again.
void forward_for_good(ThreadState& ts);
void count_sample(ThreadState& ts, const OwnerRecord& owner, size_t usable);
void settle_sample(ThreadState& ts, const OwnerRecord& owner, size_t usable);

// Cold path: the first accounted call of a thread claims its slot.
ThreadSlot* claim_slot(ThreadState& ts, uintptr_t start_routine, int32_t creator_tid);
// The same for hooks that run the countdown themselves (whose common call
// counts into `ts.slot` once the countdown is above zero): false while the
// agent does not count (in a forked child the thread stops asking), and for
// a thread that found no free slot, which counts into `overflow` from then on.
bool claim_counting_slot(ThreadState& ts);
// Runs on the exiting thread (pthread key destructor).
void mark_thread_exited(ThreadState& ts);
// Runs on the sampler thread: folds slots of vanished threads into `exited`.
void recycle_slot(uint32_t index);

void ledger_init(uint64_t sample_interval, LedgerScope scope, bool counts_sampled = false);
// Hooks put in late: every count starts again from zero now (kLedgerSince).
// Call with the hooks out, or just put in: what a thread inside a hook adds
// meanwhile may be lost.
void ledger_restart_since(uint64_t now_ms);
// The hooks are out: nothing is counted until the next restart.
void ledger_stop();
int32_t current_tid();
uint64_t wall_ms();

namespace detail {
// Single-writer increment: the owner thread is the only writer of the field,
// so no locked instruction is needed.
inline void bump(std::atomic<uint64_t>& a, uint64_t by) {
#if defined(__x86_64__)
  // One add to memory (compilers do not fuse a relaxed load and store into
  // one): its store is a single aligned 8-byte write, which a relaxed load
  // on another thread sees whole.
  static_assert(sizeof(a) == sizeof(uint64_t), "a lock-free atomic is its value");
  asm volatile("addq %1, %0" : "+m"(*reinterpret_cast<uint64_t*>(&a)) : "er"(by) : "cc");
#else
  a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
#endif
}
// Moves a thread's sampling countdown on by `bytes`: true when it reached
// zero (one subtract from memory, whose flags give the answer).
inline bool count_down(ThreadState& ts, size_t bytes) {
#if defined(__x86_64__)
  bool due;
  asm("subq %2, %0" : "+m"(ts.bytes_until_sample), "=@ccle"(due) : "er"(int64_t(bytes)));
  return due;
#else
  return (ts.bytes_until_sample -= int64_t(bytes)) <= 0;
#endif
}
inline ThreadSlot* slot_of(ThreadState& ts) {
  ThreadSlot* slot = ts.slot;
  if (__builtin_expect(slot == nullptr, 0)) slot = claim_slot(ts, 0, 0);
  return slot;
}
}  // namespace detail

inline void count_alloc_in(ThreadSlot& slot, size_t usable) {
  detail::bump(slot.alloc_count, 1);
  detail::bump(slot.alloc_bytes, usable);
}

inline void count_free_in(ThreadSlot& slot, size_t usable) {
  detail::bump(slot.free_count, 1);
  detail::bump(slot.free_bytes, usable);
}

inline ThreadSlot* count_alloc(ThreadState& ts, size_t usable) {
  ThreadSlot* slot = detail::slot_of(ts);
  if (slot != nullptr) count_alloc_in(*slot, usable);
  return slot;
}

inline ThreadSlot* count_free(ThreadState& ts, size_t usable) {
  ThreadSlot* slot = detail::slot_of(ts);
  if (slot != nullptr) count_free_in(*slot, usable);
  return slot;
}

// What a call that the countdown sent off the fast path is, for hooks that
// run the countdown themselves: a thread's first call claims its slot with
// `claim` (false: not counted) and starts the countdown afresh; a thread in
// the overflow slot is counted nowhere.
enum class SlowCall { kUncounted, kCounted, kSampled };
template <typename Claim>
inline SlowCall slow_call(ThreadState& ts, size_t requested, Claim&& claim) {
  if (ts.slot == nullptr) {
    if (!claim(ts)) {
      // Not counting yet: ask again next time (unless the thread now
      // forwards for good).
      if (ts.slot == nullptr && ts.busy == 0) ts.bytes_until_sample = 0;
      return SlowCall::kUncounted;
    }
    if (!detail::count_down(ts, requested)) return SlowCall::kCounted;
  }
  return ts.slot == &g_ledger.overflow ? SlowCall::kUncounted : SlowCall::kSampled;
}

inline void on_alloc(ThreadState& ts, void* block, size_t usable) {
  if (count_alloc(ts, usable) == nullptr) return;
  ts.bytes_until_sample -= int64_t(usable);
  if (__builtin_expect(ts.bytes_until_sample <= 0, 0)) take_sample(ts, block, usable, usable);
}

inline void on_free(ThreadState& ts, void* block, size_t usable) {
  if (count_free(ts, usable) == nullptr) return;
  if (__builtin_expect(g_ownership.might_hold(uintptr_t(block)), 0)) settle_if_sampled(ts, block, usable);
}

inline void on_free_sampled(ThreadState& ts, void* block) {
  if (__builtin_expect(!g_ownership.might_hold(uintptr_t(block)), 1)) return;
  if (detail::slot_of(ts) != nullptr) settle_if_sampled(ts, block);
}

}  // namespace leakscope
