// The task registry: tasks an async runtime reports through the C ABI
// (native/include/leakscope.h), kept in a fixed table of 128-byte records.
// Runtime threads write it without locks; the sampler thread forgets
// completed tasks after the retention time; the server thread reads it for a
// snapshot while the runtime keeps running (it never stops a thread).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "clock.h"
#include "json.h"
#include "strings.h"

namespace leakscope {

enum TaskFlag : uint32_t {
  kTaskRunning = 1,    // between poll_begin and poll_end
  kTaskNotified = 2,   // woken since its last poll began
  kTaskCompleted = 4,
  kTaskForgotten = 8,  // completed and past retention: its id no longer answers
  kTaskFree = 16,      // on the free list
};
// A sampled task stands for 2^k tasks (the Node bridge samples promises when
// they come fast): k lives in these bits of the state, set at spawn.
constexpr uint32_t kTaskWeightShift = 8;
constexpr uint32_t kTaskWeightMask = 0x1Fu << kTaskWeightShift;
inline uint64_t task_weight(uint32_t state) { return uint64_t(1) << ((state & kTaskWeightMask) >> kTaskWeightShift); }

// How a task starts: waiting (a promise, a timer: nothing to run until
// something settles or fires) rather than scheduled, and what it weighs.
struct SpawnOptions {
  bool waiting = false;
  uint32_t weight_log2 = 0;  // at most 31
};

// One task. The runtime polls a task on one thread at a time, so the poll
// fields have one writer at a time; fields any thread may write (state,
// wakes, wakers, live bytes) use atomic read-modify-writes.
struct alignas(64) TaskRecord {
  std::atomic<uint64_t> id;  // generation << 24 | index; 0 while free or forgotten
  std::atomic<uint32_t> state;
  uint32_t site;             // index in the site table: kind and spawn site
  uint32_t name;             // index in the name table, 0 unnamed
  std::atomic<int32_t> wakers;
  uint64_t parent_id;
  uint64_t created_ns;
  std::atomic<uint64_t> ended_ns;
  std::atomic<uint64_t> polls;
  std::atomic<uint64_t> busy_ns;
  std::atomic<uint64_t> poll_started_ns;  // the current poll, 0 when not running
  std::atomic<uint64_t> last_poll_end_ns;
  std::atomic<uint64_t> longest_poll_ns;
  std::atomic<uint64_t> wakes;
  std::atomic<uint64_t> last_wake_ns;
  std::atomic<uint64_t> allocated_bytes;
  std::atomic<int64_t> live_bytes;  // sampled, like a thread's
  uint32_t padding;  // keeps the record at 128 bytes
  std::atomic<uint32_t> generation;
};
static_assert(sizeof(TaskRecord) == 128, "the budget is 128 bytes per task");

constexpr uint32_t kPollHistogramBuckets = 20;  // log2 of µs; the last is ≥ 2^19 µs

// Per spawn site. Counters of finished tasks are folded in at completion, so
// a poll touches its own task record and one histogram bucket only. Each
// counter is split over kSiteShards cache lines so that threads spawning at
// one site do not fight over one line: the first kOwnedShards threads to
// count have one each (added to without locked instructions), later ones
// share the rest. Readers add the shards up.
constexpr uint32_t kSiteShards = 16;
constexpr uint32_t kOwnedShards = 12;  // each the first writer's alone (tasks.cc)

struct alignas(64) SiteShard {
  std::atomic<uint64_t> spawned;
  std::atomic<uint64_t> completed;
  std::atomic<uint64_t> done_polls;
  std::atomic<uint64_t> done_busy_ns;
  std::atomic<uint64_t> done_wakes;
  std::atomic<uint64_t> done_allocated_bytes;
  std::atomic<uint64_t> done_longest_poll_ns;
  std::atomic<int64_t> live_bytes;  // sampled, of all its tasks, finished or not
  std::atomic<uint64_t> poll_histogram[kPollHistogramBuckets];
};

struct SiteTotals {
  uint64_t spawned = 0, completed = 0, done_polls = 0, done_busy_ns = 0, done_wakes = 0, done_allocated_bytes = 0;
  uint64_t done_longest_poll_ns = 0;
  int64_t live_bytes = 0;
  uint64_t poll_histogram[kPollHistogramBuckets] = {};
};

// A poll this long blocks an event loop (never-yielded's threshold).
constexpr uint64_t kSlowPollNs = 1000000000;
// Slow polls are remembered this long: never-yielded is about recent polls.
constexpr uint64_t kSlowPollMemoryNs = 60ull * 1000000000;

struct SiteStats {
  std::atomic<uint32_t> kind;
  // The longest slow poll that ended within kSlowPollMemoryNs of the last
  // one, and when that last one ended. Written only by polls of a second or
  // more: never on a fast path.
  std::atomic<uint64_t> recent_slow_poll_ns;
  std::atomic<uint64_t> last_slow_poll_end_ns;
  SiteShard shards[kSiteShards];
  // Any thread; sums the shards as they are now.
  SiteTotals totals() const;
  uint64_t live() const;
};

// What a snapshot asks of the registry (docs/protocol.md, op "snapshot").
struct TaskQuery {
  uint64_t idle_threshold_ms = 30000;
  uint64_t offset = 0;
  uint64_t limit = 100;
  uint64_t sites_limit = 200;
  uint64_t site_history_limit = 50;  // sites whose live-count history is sent
  uint64_t stacks_limit = 100;       // allocation stacks sent, by live bytes and as many by growth; 0 all
  std::string sort = "idle";         // idle | age | polls | busy | allocated | live_bytes | id
  std::string state = "live";        // live | all | idle | running | scheduled | completed
  std::string filter;                // substring of kind, name or site (ASCII case-insensitive)
  std::string site;                  // exact spawn site
};

// Live tasks of one kind, and how many of them have been idle for at least
// a threshold (the gauges a runtime publishes, native/src/core/gauges.cc).
struct KindCount {
  std::string kind;
  uint64_t live = 0;
  uint64_t idle_over = 0;
};

// Per-site live counts as the sampler records them each second.
struct SiteLive {
  uint32_t site;
  uint32_t live;
};

class TaskRegistry {
 public:
  // Runs once at agent start. `capacity` live-or-retained tasks at most.
  bool init(uint32_t capacity, uint64_t retain_ms, uint32_t retain_max);
  bool ready() const { return records_ != nullptr; }

  // The ABI, any runtime thread.
  uint64_t spawn(const char* kind, const char* name, const char* site, uint64_t parent_id, SpawnOptions options = {});
  // A spawn site interned once, for a runtime that spawns at the same sites
  // again and again: kind index << 16 | site index, 0 when a table is full.
  // spawn_at(handle, ...) is spawn(kind, site, ...) without the interning.
  uint32_t site_handle(const char* kind, const char* site);
  uint64_t spawn_at(uint32_t site_handle, const char* name, uint64_t parent_id, SpawnOptions options = {});
  void poll_begin(uint64_t id);
  void poll_end(uint64_t id);
  void wake(uint64_t id);
  void waker_clone(uint64_t id);
  void waker_drop(uint64_t id);
  void complete(uint64_t id);

  // Sample path of the ledger (any thread): a sampled block allocated while
  // the task `tag` was polled, and its free.
  void sample_taken(uint64_t tag, uint64_t weight);
  // The spawn site of a sample tag's task.
  static uint32_t site_of(uint64_t tag);
  void sample_freed(uint64_t tag, uint64_t weight);

  // Runs on the sampler thread: forgets completed tasks past retention, and
  // the oldest ones beyond retain_max.
  void sweep();
  // Runs on the sampler thread: live tasks per site.
  void live_by_site(std::vector<SiteLive>* out, uint64_t* total) const;

  // Any thread: live and long-idle tasks per kind, from one read of every
  // record (weights included).
  void count_by_kind(uint64_t idle_threshold_ms, std::vector<KindCount>* out) const;

  // Runs on the server thread. `site_history(site, out)` fills the site's
  // live counts aligned with the snapshot's history, or leaves `out` empty.
  using SiteHistoryFn = std::function<void(uint32_t site, std::vector<uint32_t>* out)>;
  void write(JsonWriter& out, const TaskQuery& query, const SiteHistoryFn& site_history) const;

  uint64_t dropped_spawns() const { return dropped_spawns_.load(std::memory_order_relaxed); }
  uint64_t dropped_strings() const { return dropped_strings_.load(std::memory_order_relaxed); }

 private:
  void note_slow_poll(SiteStats& s, uint64_t took, uint64_t now);
  TaskRecord* lookup(uint64_t id) const;
  // Milliseconds from the registry's start to a CLOCK_MONOTONIC time; wraps
  // after 49 days, so compare two by their difference.
  uint32_t since_start_ms(uint64_t ns) const { return uint32_t((ns - std::min(ns, base_mono_ns_)) / 1000000); }
  bool take_free_index(uint32_t* index, bool* fresh);
  void push_free_indexes(const std::vector<uint32_t>& indexes);

  TaskRecord* records_ = nullptr;
  SiteStats* sites_stats_ = nullptr;
  // Sites in order of their first spawn, so readers skip the empty ones.
  std::atomic<uint32_t>* site_list_ = nullptr;
  std::atomic<uint32_t> site_count_{0};
  uint32_t capacity_ = 0;
  uint64_t retain_ns_ = 0;
  uint32_t retain_max_ = 0;
  std::atomic<uint32_t> high_water_{0};
  // The free list's links (index + 1), apart from the records: popped in
  // the order the sweep pushed them, they are read from a few cached lines
  // rather than one cold record each.
  std::atomic<uint32_t>* free_links_ = nullptr;
  std::atomic<uint64_t> free_head_{0};  // tag << 32 | (index + 1)
  std::atomic<uint32_t> free_count_{0};
  // Tasks completed since the last sweep: one list per shard of threads
  // (as the site counters'), pushed by complete() and taken whole by the
  // sweep, so completing threads do not fight over one line. A link is the
  // next index + 1 and the completion time, apart from the records.
  struct DoneLink {
    std::atomic<uint32_t> next;
    uint32_t at_ms;  // since the registry's start; orders the lists' merge
  };
  struct alignas(64) DoneHead {
    std::atomic<uint32_t> head{0};
  };
  DoneLink* done_links_ = nullptr;
  DoneHead done_heads_[kSiteShards];
  // The sweep's own (sampler thread), made at its first run: g_tasks must
  // stay constant-initialized, or its constructor would run after the
  // agent started it from the program's first malloc, and wipe it.
  struct SweepLists;
  SweepLists* sweep_lists_ = nullptr;
  std::atomic<uint64_t> dropped_spawns_{0};
  std::atomic<uint64_t> dropped_strings_{0};
  std::atomic<uint8_t> kind_tracks_wakers_[64 + 1]{};
  StringTable kinds_, sites_, names_;
  uint64_t base_wall_ms_ = 0, base_mono_ns_ = 0;
};

extern TaskRegistry g_tasks;

// The calling thread's polls in progress (nested when a poll runs another
// task's poll, as block_on does). Initial-exec TLS, like the ledger's.
struct PollFrame {
  uint64_t id;
  uint64_t started_ns;
  uint64_t alloc_mark;   // the thread's allocated bytes when the poll began
  uint64_t child_bytes;  // allocated by polls nested in this one
  uint64_t tag;          // the sample tag of the task
};
constexpr uint32_t kMaxPollDepth = 4;
struct PollStack {
  PollFrame frames[kMaxPollDepth];
  uint32_t depth;
  uint32_t too_deep;  // nested polls beyond kMaxPollDepth, not charged
};
extern __thread PollStack t_polls __attribute__((tls_model("initial-exec")));

}  // namespace leakscope
