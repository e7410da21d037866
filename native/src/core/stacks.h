// Where sampled blocks were allocated: the call stack of each sample,
// interned in a bounded table, with per-stack counts of the blocks and bytes
// the samples stand for. Only the sample path captures a stack (a block in
// ~64 KiB allocated), so the common call of a hook does not change.
//
// Stacks are return addresses; the agent never symbolizes. write_json sends
// them with the loaded objects (path, load address, executable segments,
// GNU build id) and the CLI resolves names (src/model/symbols.ts).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "json.h"

namespace leakscope {

// How a sample's stack is walked.
//  kUnwindDwarf: the C++ runtime's unwinder (libgcc _Unwind_Backtrace, from
//    .eh_frame): right for code built without frame pointers, which is what
//    Debian and most distributions ship.
//  kUnwindFramePointers: follows the %rbp chain, validated against the
//    thread's stack; cheaper, and right only where every frame keeps a frame
//    pointer (-fno-omit-frame-pointer). A thread whose stack bounds the agent
//    does not know falls back to the DWARF walk.
//  kUnwindOff: no stacks.
enum class Unwinder : uint32_t { kOff = 0, kDwarf = 1, kFramePointers = 2 };

constexpr uint32_t kMaxStackDepth = 48;
constexpr uint32_t kStackCapacity = 8192;  // a power of two; id 0 is "no stack"; 5.4 MiB of .bss, touched as used
// Live bytes per stack are kept at this spacing, for growth by stack.
constexpr uint32_t kCheckpointSeconds = 30;
constexpr uint32_t kCheckpoints = 32;  // 16 minutes

struct StackEntry {
  // Zero in .bss (StackTable).
  std::atomic<uint32_t> state;  // 0 empty, 1 being written, 2 ready
  uint32_t depth;
  uint64_t hash;
  uintptr_t frames[kMaxStackDepth];
  // What the samples of this stack stand for. Blocks in thousandths: a
  // sample of a large block stands for a fraction over one block.
  std::atomic<uint64_t> alloc_blocks_milli;
  std::atomic<uint64_t> alloc_bytes;
  std::atomic<int64_t> live_blocks_milli;
  std::atomic<int64_t> live_bytes;
  // Written by the sampler thread only.
  int64_t live_at[kCheckpoints];
};

class StackTable {
 public:
  // Before the first sample: the unwinder, and the agent's own code, whose
  // frames no stack starts with (nothing to skip where the agent is linked
  // into the program, as in the Rust crate: the CLI drops those frames by
  // name).
  void init(Unwinder unwinder, uint64_t interval_bytes);

  // Sample path: whether this sample, standing for `weight` bytes, gets a
  // stack. Stacks are a second, sparser sampling over the samples: with
  // probability min(1, weight / interval), so that a stack stands for
  // `interval` bytes on average (512 KiB by default, jemalloc's
  // lg_prof_sample default; capturing one costs microseconds, the ownership
  // sample beneath it nanoseconds). `random`: 64 random bits.
  bool wants(uint64_t weight, uint64_t random) const {
    if (unwinder_ == Unwinder::kOff) return false;
    if (weight >= interval_) return true;
    return double(random >> 11) * (1.0 / 9007199254740992.0) * double(interval_) < double(weight);
  }

  // Sample path, on the allocating thread with its hooks guarded: the id of
  // the caller's stack, 0 when stacks are off or the table is full.
  uint32_t capture();
  // Sample path: a sample of `weight` bytes standing for a block of
  // `usable` bytes, taken (on capture's id) or freed.
  void sampled(uint32_t id, uint64_t sample_weight, size_t usable) {
    if (id == 0 || id >= kStackCapacity) return;
    const uint64_t weight = stack_weight(sample_weight);
    StackEntry& e = entries_[id];
    const uint64_t blocks = blocks_milli(weight, usable);
    e.alloc_blocks_milli.fetch_add(blocks, std::memory_order_relaxed);
    e.alloc_bytes.fetch_add(weight, std::memory_order_relaxed);
    e.live_blocks_milli.fetch_add(int64_t(blocks), std::memory_order_relaxed);
    e.live_bytes.fetch_add(int64_t(weight), std::memory_order_relaxed);
  }
  void freed(uint32_t id, uint64_t sample_weight, size_t usable) {
    if (id == 0 || id >= kStackCapacity) return;
    const uint64_t weight = stack_weight(sample_weight);
    StackEntry& e = entries_[id];
    e.live_blocks_milli.fetch_sub(int64_t(blocks_milli(weight, usable)), std::memory_order_relaxed);
    e.live_bytes.fetch_sub(int64_t(weight), std::memory_order_relaxed);
  }
  // Sample path: a sample with a stack allocated while a task of spawn
  // site `site` was polled (tasks.h), taken or freed: a site's memory by
  // stack. A pair that finds no room is counted in `site_dropped`.
  void site_sampled(uint32_t site, uint32_t id, uint64_t sample_weight);
  void site_freed(uint32_t site, uint32_t id, uint64_t sample_weight);
  // Server thread: a spawn site's stacks by live bytes, `limit` at most.
  void site_stacks(uint32_t site, size_t limit, std::vector<std::pair<uint32_t, int64_t>>* out) const;

  // Hooks put in late start again (ledger_restart_since): live counts go
  // back to zero with the ownership table they mirror.
  void restart_live();

  // Sampler thread, once a second: keeps each stack's live bytes every
  // kCheckpointSeconds.
  void checkpoint(uint64_t now_ms);

  // Server thread: {"unwinder", "capacity", "used", "dropped",
  // "checkpoint_ms", "entries": [...], "modules": [...]}. `limit` stacks at
  // most, by live bytes, and as many again by growth since the oldest
  // checkpoint (0: every stack).
  void write_json(JsonWriter& out, uint64_t limit);

 private:
  // The bytes a sample with a stack stands for: its weight / P(stack).
  uint64_t stack_weight(uint64_t sample_weight) const { return sample_weight > interval_ ? sample_weight : interval_; }
  static uint64_t blocks_milli(uint64_t weight, size_t usable) {
    return usable == 0 || weight <= usable ? 1000 : weight * 1000 / usable;
  }
  uint32_t intern(const uintptr_t* frames, uint32_t depth);

  // No initializers: the table is zero in .bss, never constructed, so that
  // a hook may use it before the program's constructors ran.
  struct SitePair {
    std::atomic<uint64_t> key;  // (site + 1) << 32 | stack id; 0 empty
    std::atomic<int64_t> live_bytes;
  };
  static constexpr uint32_t kSitePairs = 4096;
  std::atomic<int64_t>* site_live(uint32_t site, uint32_t id, bool claim);

  Unwinder unwinder_;
  uint64_t interval_;
  std::atomic<uint64_t> site_dropped_;
  SitePair site_pairs_[kSitePairs];
  uintptr_t own_lo_, own_hi_;  // the agent's text, when it is its own object
  std::atomic<uint32_t> used_;
  std::atomic<uint64_t> dropped_;
  uint64_t checkpoint_ms_[kCheckpoints];
  uint32_t checkpoints_taken_;
  uint64_t last_checkpoint_ms_;
  StackEntry entries_[kStackCapacity];

  friend struct StackWalk;
};

extern StackTable g_stacks;

// "dwarf" | "fp" | "off" from LEAKSCOPE_STACKS; DWARF when unset.
Unwinder unwinder_from_env();
// Mean bytes between stacks (LEAKSCOPE_STACK_INTERVAL; 512 KiB).
constexpr uint64_t kDefaultStackInterval = 512 * 1024;

}  // namespace leakscope
