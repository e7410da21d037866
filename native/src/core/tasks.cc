#include "tasks.h"

#include <sys/mman.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "ledger.h"

namespace leakscope {

TaskRegistry g_tasks;
__thread PollStack t_polls __attribute__((tls_model("initial-exec")));

namespace {

constexpr uint32_t kIndexBits = 24;  // 16 Mi tasks at most
constexpr uint64_t kIndexMask = (uint64_t(1) << kIndexBits) - 1;
constexpr uint32_t kSiteBits = 14;   // 16 Ki spawn sites
constexpr uint32_t kKindBits = 6;    // 64 kinds

// A sample tag: which task (and its site) a sampled block is charged to.
// bit 63 set | generation (23 bits) << 40 | site (16 bits) << 24 | index
uint64_t make_tag(uint32_t generation, uint32_t site, uint32_t index) {
  return (uint64_t(1) << 63) | (uint64_t(generation & 0x7FFFFF) << 40) | (uint64_t(site & 0xFFFF) << 24) | index;
}
uint32_t tag_index(uint64_t tag) { return uint32_t(tag & kIndexMask); }
uint32_t tag_site(uint64_t tag) { return uint32_t((tag >> 24) & 0xFFFF); }
uint32_t tag_generation(uint64_t tag) { return uint32_t((tag >> 40) & 0x7FFFFF); }

inline uint64_t relaxed(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }
// One writer at a time (the polling thread): the ledger's single-writer add.
using detail::bump;
inline void raise_to(std::atomic<uint64_t>& a, uint64_t v) {
  uint64_t seen = relaxed(a);
  while (v > seen && !a.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

void* reserve(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

uint32_t poll_bucket(uint64_t ns) {
  uint64_t us = ns / 1000;
  uint32_t bucket = 0;
  while (us > 1 && bucket + 1 < kPollHistogramBuckets) {
    us >>= 1;
    ++bucket;
  }
  return bucket;
}

// The calling thread's shard of site counters. The first kOwnedShards
// threads to count each get one of their own, which they add to without a
// locked instruction (it has one writer); later threads share the others
// round-robin, with atomic adds. A shard is never handed back: a thread
// that exits keeps its own.
__thread uint8_t t_site_shard __attribute__((tls_model("initial-exec"))) = 0xFF;
__thread bool t_shard_owned __attribute__((tls_model("initial-exec"))) = false;
std::atomic<uint32_t> g_next_shard{0};

SiteShard& my_shard(SiteStats& site) {
  uint8_t shard = t_site_shard;
  if (__builtin_expect(shard == 0xFF, 0)) {
    const uint32_t n = g_next_shard.fetch_add(1, std::memory_order_relaxed);
    t_shard_owned = n < kOwnedShards;
    shard = t_site_shard = uint8_t(t_shard_owned ? n : kOwnedShards + (n - kOwnedShards) % (kSiteShards - kOwnedShards));
  }
  return site.shards[shard];
}

// Adds to a counter of the calling thread's shard (after my_shard).
template <typename T>
inline void shard_add(std::atomic<T>& a, T v) {
  if (t_shard_owned)
    a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  else
    a.fetch_add(v, std::memory_order_relaxed);
}

inline void shard_raise_to(std::atomic<uint64_t>& a, uint64_t v) {
  if (!t_shard_owned) return raise_to(a, v);
  if (v > relaxed(a)) a.store(v, std::memory_order_relaxed);
}

ThreadSlot* thread_slot() {
  ThreadState& ts = t_state;
  if (ts.slot == nullptr && g_accounting.load(std::memory_order_relaxed) && !ts.internal) claim_slot(ts, 0, 0);
  return ts.slot;
}

}  // namespace

SiteTotals SiteStats::totals() const {
  SiteTotals t;
  for (const SiteShard& s : shards) {
    t.spawned += relaxed(s.spawned);
    t.completed += relaxed(s.completed);
    t.done_polls += relaxed(s.done_polls);
    t.done_busy_ns += relaxed(s.done_busy_ns);
    t.done_wakes += relaxed(s.done_wakes);
    t.done_allocated_bytes += relaxed(s.done_allocated_bytes);
    t.done_longest_poll_ns = std::max(t.done_longest_poll_ns, relaxed(s.done_longest_poll_ns));
    t.live_bytes += s.live_bytes.load(std::memory_order_relaxed);
    for (uint32_t b = 0; b < kPollHistogramBuckets; ++b) t.poll_histogram[b] += relaxed(s.poll_histogram[b]);
  }
  return t;
}

uint64_t SiteStats::live() const {
  uint64_t spawned = 0, completed = 0;
  for (const SiteShard& s : shards) {
    spawned += relaxed(s.spawned);
    completed += relaxed(s.completed);
  }
  return spawned > completed ? spawned - completed : 0;
}

bool TaskRegistry::init(uint32_t capacity, uint64_t retain_ms, uint32_t retain_max) {
  if (records_ != nullptr) return true;
  capacity = std::min<uint32_t>(std::max<uint32_t>(capacity, 1024), uint32_t(kIndexMask));
  auto* records = static_cast<TaskRecord*>(reserve(sizeof(TaskRecord) * capacity));
  auto* stats = static_cast<SiteStats*>(reserve(sizeof(SiteStats) * ((1u << kSiteBits) + 1)));
  auto* site_list = static_cast<std::atomic<uint32_t>*>(reserve(sizeof(std::atomic<uint32_t>) << kSiteBits));
  auto* free_links = static_cast<std::atomic<uint32_t>*>(reserve(sizeof(std::atomic<uint32_t>) * capacity));
  auto* done_links = static_cast<DoneLink*>(reserve(sizeof(DoneLink) * capacity));
  if (records == nullptr || stats == nullptr || site_list == nullptr || free_links == nullptr || done_links == nullptr)
    return false;
  if (!kinds_.init(kKindBits, 64 * 1024) || !sites_.init(kSiteBits, 4 << 20) || !names_.init(18, 16 << 20))
    return false;
  capacity_ = capacity;
  retain_ns_ = retain_ms * 1000000;
  retain_max_ = retain_max;
  sites_stats_ = stats;
  site_list_ = site_list;
  free_links_ = free_links;
  done_links_ = done_links;
  base_wall_ms_ = wall_ms();
  base_mono_ns_ = mono_ns();
  std::atomic_thread_fence(std::memory_order_release);
  records_ = records;
  return true;
}

TaskRecord* TaskRegistry::lookup(uint64_t id) const {
  const uint64_t index = id & kIndexMask;
  if (id == 0 || records_ == nullptr || index >= capacity_) return nullptr;
  TaskRecord* record = &records_[index];
  return record->id.load(std::memory_order_acquire) == id ? record : nullptr;
}

bool TaskRegistry::take_free_index(uint32_t* index, bool* fresh) {
  *fresh = false;
  uint64_t head = free_head_.load(std::memory_order_acquire);
  while (uint32_t(head) != 0) {
    const uint32_t top = uint32_t(head) - 1;
    const uint64_t next = ((head >> 32) + 1) << 32 | free_links_[top].load(std::memory_order_relaxed);
    if (free_head_.compare_exchange_weak(head, next, std::memory_order_acq_rel)) {
      free_count_.fetch_sub(1, std::memory_order_relaxed);
      *index = top;
      // The next spawn takes the next record: it was freed long ago and is
      // cold, so its lines are fetched now rather than waited for then.
      if (uint32_t(next) != 0) {
        const char* ahead = reinterpret_cast<const char*>(&records_[uint32_t(next) - 1]);
        __builtin_prefetch(ahead, 1);
        __builtin_prefetch(ahead + 64, 1);
      }
      return true;
    }
  }
  const uint32_t next = high_water_.fetch_add(1, std::memory_order_relaxed);
  if (next < capacity_) {
    *index = next;
    *fresh = true;
    return true;
  }
  high_water_.store(capacity_, std::memory_order_relaxed);
  return false;
}

// Runs on the sampler thread: the records go onto the free list as one
// chain, in their order (the first is taken first), with one exchange of
// the head for all of them.
void TaskRegistry::push_free_indexes(const std::vector<uint32_t>& indexes) {
  if (indexes.empty()) return;
  for (size_t i = 0; i < indexes.size(); ++i) {
    records_[indexes[i]].state.store(kTaskFree, std::memory_order_relaxed);
    if (i + 1 < indexes.size()) free_links_[indexes[i]].store(indexes[i + 1] + 1, std::memory_order_relaxed);
  }
  const uint32_t first = indexes.front();
  std::atomic<uint32_t>& last_link = free_links_[indexes.back()];
  uint64_t head = free_head_.load(std::memory_order_relaxed);
  do {
    last_link.store(uint32_t(head), std::memory_order_relaxed);
  } while (!free_head_.compare_exchange_weak(head, ((head >> 32) + 1) << 32 | (first + 1), std::memory_order_acq_rel));
  free_count_.fetch_add(uint32_t(indexes.size()), std::memory_order_relaxed);
}

uint32_t TaskRegistry::site_handle(const char* kind, const char* site) {
  if (records_ == nullptr) return 0;
  const std::string_view kind_text = kind != nullptr && *kind != '\0' ? kind : "task";
  const std::string_view site_parts[3] = {kind_text, "\x1f", site != nullptr && *site != '\0' ? site : "unknown"};
  const uint32_t kind_index = kinds_.intern(kind_text);
  const uint32_t site_index = sites_.intern(site_parts, 3);
  if (kind_index == 0 || site_index == 0) return 0;
  return kind_index << 16 | site_index;
}

uint64_t TaskRegistry::spawn(const char* kind, const char* name, const char* site, uint64_t parent_id, SpawnOptions options) {
  return spawn_at(site_handle(kind, site), name, parent_id, options);
}

uint64_t TaskRegistry::spawn_at(uint32_t site_handle, const char* name, uint64_t parent_id, SpawnOptions options) {
  if (records_ == nullptr) return 0;
  if (site_handle == 0) {
    dropped_strings_.fetch_add(1, std::memory_order_relaxed);
    dropped_spawns_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  const uint32_t kind_index = site_handle >> 16;
  const uint32_t site_index = site_handle & 0xFFFF;
  uint32_t name_index = 0;
  if (name != nullptr && *name != '\0') {
    name_index = names_.intern(name);
    if (name_index == 0) dropped_strings_.fetch_add(1, std::memory_order_relaxed);
  }
  uint32_t index;
  bool fresh;
  if (!take_free_index(&index, &fresh)) {
    dropped_spawns_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  TaskRecord& r = records_[index];
  // 28 bits of generation keep ids below 2^53: exact as JSON numbers. A
  // fresh record is not read first: a read would map the zero page, and the
  // write after it would cost a copy-on-write fault and a TLB shootdown.
  const uint32_t generation = fresh ? 1 : (r.generation.load(std::memory_order_relaxed) & 0xFFFFFFF) + 1;
  const uint64_t id = uint64_t(generation) << kIndexBits | index;
  const uint64_t now = coarse_ns();
  r.generation.store(generation, std::memory_order_relaxed);
  const uint32_t state = (options.waiting ? 0u : uint32_t(kTaskNotified)) |
                         ((std::min<uint32_t>(options.weight_log2, 31) << kTaskWeightShift) & kTaskWeightMask);
  r.state.store(state, std::memory_order_relaxed);
  r.site = site_index;
  r.name = name_index;
  r.wakers.store(0, std::memory_order_relaxed);
  r.parent_id = parent_id;
  r.created_ns = now;
  for (auto* field : {&r.ended_ns, &r.polls, &r.busy_ns, &r.poll_started_ns, &r.last_poll_end_ns, &r.longest_poll_ns,
                      &r.wakes, &r.last_wake_ns, &r.allocated_bytes})
    field->store(0, std::memory_order_relaxed);
  r.live_bytes.store(0, std::memory_order_relaxed);
  r.id.store(id, std::memory_order_release);
  SiteStats& s = sites_stats_[site_index];
  shard_add(my_shard(s).spawned, uint64_t(task_weight(state)));
  // The first spawn at a site lists it for the readers.
  if (s.kind.load(std::memory_order_acquire) == 0) {
    uint32_t unset = 0;
    if (s.kind.compare_exchange_strong(unset, kind_index, std::memory_order_acq_rel)) {
      const uint32_t at = site_count_.fetch_add(1, std::memory_order_relaxed);
      if (at < (1u << kSiteBits)) site_list_[at].store(site_index, std::memory_order_release);
    }
  }
  return id;
}

void TaskRegistry::poll_begin(uint64_t id) {
  TaskRecord* r = lookup(id);
  if (r == nullptr) return;
  PollStack& stack = t_polls;
  if (stack.depth == kMaxPollDepth) {
    ++stack.too_deep;
    return;
  }
  const uint64_t now = poll_ns();
  // The poll consumes the wake-up; the weight stays.
  r->state.store(kTaskRunning | (r->state.load(std::memory_order_relaxed) & kTaskWeightMask), std::memory_order_relaxed);
  r->poll_started_ns.store(now, std::memory_order_relaxed);
  const ThreadSlot* slot = thread_slot();
  const uint64_t tag = make_tag(uint32_t(id >> kIndexBits), r->site, uint32_t(id & kIndexMask));
  stack.frames[stack.depth++] = PollFrame{id, now, slot ? relaxed(slot->alloc_bytes) : 0, 0, tag};
  t_state.task_tag = tag;
}

void TaskRegistry::poll_end(uint64_t id) {
  PollStack& stack = t_polls;
  if (stack.too_deep > 0 && (stack.depth == 0 || stack.frames[stack.depth - 1].id != id)) {
    --stack.too_deep;
    return;
  }
  uint32_t at = stack.depth;
  while (at > 0 && stack.frames[at - 1].id != id) --at;
  if (at == 0) return;  // a poll_end without its poll_begin
  const PollFrame frame = stack.frames[at - 1];
  stack.depth = at - 1;  // frames above it were abandoned
  const uint64_t now = poll_ns();
  const ThreadSlot* slot = t_state.slot;
  const uint64_t during = slot ? relaxed(slot->alloc_bytes) - frame.alloc_mark : 0;
  const uint64_t own = during > frame.child_bytes ? during - frame.child_bytes : 0;
  if (stack.depth > 0) {
    stack.frames[stack.depth - 1].child_bytes += during;
    t_state.task_tag = stack.frames[stack.depth - 1].tag;
  } else {
    t_state.task_tag = 0;
  }
  TaskRecord* r = lookup(id);
  if (r == nullptr) return;
  const uint64_t took = now > frame.started_ns ? now - frame.started_ns : 0;  // across a new scale: maybe a hair early
  bump(r->polls, 1);
  bump(r->busy_ns, took);
  bump(r->allocated_bytes, own);
  if (took > relaxed(r->longest_poll_ns)) r->longest_poll_ns.store(took, std::memory_order_relaxed);
  r->last_poll_end_ns.store(now, std::memory_order_relaxed);
  r->poll_started_ns.store(0, std::memory_order_relaxed);
  r->state.fetch_and(~uint32_t(kTaskRunning), std::memory_order_release);
  shard_add(my_shard(sites_stats_[r->site]).poll_histogram[poll_bucket(took)], uint64_t(1));
  if (took >= kSlowPollNs) note_slow_poll(sites_stats_[r->site], took, now);
}

// Runs on the runtime's thread at the end of a poll of a second or more. Two
// slow polls at one site at once may race; either value is a slow poll.
void TaskRegistry::note_slow_poll(SiteStats& s, uint64_t took, uint64_t now) {
  const uint64_t last = s.last_slow_poll_end_ns.load(std::memory_order_relaxed);
  const bool fresh = last == 0 || now - last > kSlowPollMemoryNs;
  if (fresh || took > s.recent_slow_poll_ns.load(std::memory_order_relaxed)) s.recent_slow_poll_ns.store(took, std::memory_order_relaxed);
  s.last_slow_poll_end_ns.store(now, std::memory_order_relaxed);
}

void TaskRegistry::wake(uint64_t id) {
  TaskRecord* r = lookup(id);
  if (r == nullptr) return;
  r->wakes.fetch_add(1, std::memory_order_relaxed);
  r->last_wake_ns.store(coarse_ns(), std::memory_order_relaxed);
  r->state.fetch_or(kTaskNotified, std::memory_order_release);
}

void TaskRegistry::waker_clone(uint64_t id) {
  TaskRecord* r = lookup(id);
  if (r == nullptr) return;
  r->wakers.fetch_add(1, std::memory_order_relaxed);
  const uint32_t kind = sites_stats_[r->site].kind.load(std::memory_order_relaxed);
  if (kind_tracks_wakers_[kind].load(std::memory_order_relaxed) == 0)
    kind_tracks_wakers_[kind].store(1, std::memory_order_relaxed);
}

void TaskRegistry::waker_drop(uint64_t id) {
  TaskRecord* r = lookup(id);
  if (r != nullptr) r->wakers.fetch_sub(1, std::memory_order_relaxed);
}

void TaskRegistry::complete(uint64_t id) {
  TaskRecord* r = lookup(id);
  if (r == nullptr) return;
  const uint32_t before = r->state.fetch_or(kTaskCompleted, std::memory_order_acq_rel);
  if (before & kTaskCompleted) return;  // completed twice: count it once
  const uint64_t ended = coarse_ns();
  r->ended_ns.store(ended, std::memory_order_release);
  SiteShard& s = my_shard(sites_stats_[r->site]);
  shard_add(s.done_polls, relaxed(r->polls));
  shard_add(s.done_busy_ns, relaxed(r->busy_ns));
  shard_add(s.done_wakes, relaxed(r->wakes));
  shard_add(s.done_allocated_bytes, relaxed(r->allocated_bytes));
  shard_raise_to(s.done_longest_poll_ns, relaxed(r->longest_poll_ns));
  shard_add(s.completed, uint64_t(task_weight(before)));
  // Onto this thread's shard's list, which the sweep takes whole: it sees
  // each completion once, without reading the records of tasks still running.
  const uint32_t index = uint32_t(id & kIndexMask);
  DoneLink& link = done_links_[index];
  link.at_ms = since_start_ms(ended);
  std::atomic<uint32_t>& head = done_heads_[t_site_shard].head;
  uint32_t seen = head.load(std::memory_order_relaxed);
  do {
    link.next.store(seen, std::memory_order_relaxed);
  } while (!head.compare_exchange_weak(seen, index + 1, std::memory_order_release, std::memory_order_relaxed));
}

uint32_t TaskRegistry::site_of(uint64_t tag) { return tag_site(tag); }

void TaskRegistry::sample_taken(uint64_t tag, uint64_t weight) {
  const uint32_t index = tag_index(tag);
  if (records_ == nullptr || index >= capacity_) return;
  records_[index].live_bytes.fetch_add(int64_t(weight), std::memory_order_relaxed);
  shard_add(my_shard(sites_stats_[tag_site(tag)]).live_bytes, int64_t(weight));
}

void TaskRegistry::sample_freed(uint64_t tag, uint64_t weight) {
  const uint32_t index = tag_index(tag);
  if (records_ == nullptr || index >= capacity_) return;
  shard_add(my_shard(sites_stats_[tag_site(tag)]).live_bytes, -int64_t(weight));
  // The task's own share only while the record still holds that task.
  TaskRecord& r = records_[index];
  if ((r.generation.load(std::memory_order_relaxed) & 0x7FFFFF) == tag_generation(tag))
    r.live_bytes.fetch_sub(int64_t(weight), std::memory_order_relaxed);
}

// Completed tasks still listed (index, completion ms), in the order they
// completed (from `first` on), and those the last sweep forgot.
struct TaskRegistry::SweepLists {
  std::vector<std::pair<uint32_t, uint32_t>> retained;
  size_t first = 0;
  std::vector<uint32_t> forgotten;
};

void TaskRegistry::sweep() {
  if (records_ == nullptr) return;
  if (sweep_lists_ == nullptr) sweep_lists_ = new SweepLists();  // for the process's life
  std::vector<std::pair<uint32_t, uint32_t>>& retained = sweep_lists_->retained;
  size_t& first = sweep_lists_->first;
  std::vector<uint32_t>& forgotten = sweep_lists_->forgotten;
  // Forgotten at the previous sweep: a late call that passed lookup() before
  // that has long returned, so the records can be taken again.
  push_free_indexes(forgotten);
  forgotten.clear();
  // The completions since the last sweep, each shard's newest first: each
  // kept oldest first, and the shards' runs merged by completion time
  // (about a second apart at most within a sweep, so the difference orders
  // them across the millisecond counter's wrap).
  const size_t known = retained.size();
  const auto earlier = [](const std::pair<uint32_t, uint32_t>& a, const std::pair<uint32_t, uint32_t>& b) {
    return int32_t(a.second - b.second) < 0;
  };
  for (DoneHead& shard : done_heads_) {
    const size_t run = retained.size();
    for (uint32_t link = shard.head.exchange(0, std::memory_order_acquire); link != 0;) {
      const DoneLink& done = done_links_[link - 1];
      retained.emplace_back(link - 1, done.at_ms);
      link = done.next.load(std::memory_order_relaxed);
    }
    std::reverse(retained.begin() + ptrdiff_t(run), retained.end());
    std::inplace_merge(retained.begin() + ptrdiff_t(known), retained.begin() + ptrdiff_t(run), retained.end(), earlier);
  }
  // Past retention, beyond retain_max (the oldest first), or, under
  // pressure, at once.
  const uint32_t now_ms = since_start_ms(coarse_ns());
  const uint32_t used = std::min(high_water_.load(std::memory_order_relaxed), capacity_);
  const bool pressed = uint64_t(used - std::min(used, free_count_.load())) * 10 >= uint64_t(capacity_) * 9;
  for (; first < retained.size(); ++first) {
    const auto [index, at_ms] = retained[first];
    if (!pressed && retained.size() - first <= retain_max_ && uint64_t(uint32_t(now_ms - at_ms)) * 1000000 < retain_ns_) break;
    TaskRecord& r = records_[index];
    r.id.store(0, std::memory_order_release);
    r.state.store(kTaskForgotten, std::memory_order_release);
    forgotten.push_back(index);
  }
  if (first * 2 >= retained.size()) {
    retained.erase(retained.begin(), retained.begin() + ptrdiff_t(first));
    first = 0;
  }
}

void TaskRegistry::live_by_site(std::vector<SiteLive>* out, uint64_t* total) const {
  out->clear();
  *total = 0;
  if (records_ == nullptr) return;
  const uint32_t count = std::min(site_count_.load(std::memory_order_relaxed), 1u << kSiteBits);
  for (uint32_t k = 0; k < count; ++k) {
    const uint32_t site = site_list_[k].load(std::memory_order_acquire);
    if (site == 0) continue;  // its first spawn is still being recorded
    const uint32_t live = uint32_t(sites_stats_[site].live());
    *total += live;
    out->push_back(SiteLive{site, live});
  }
  std::sort(out->begin(), out->end(), [](const SiteLive& a, const SiteLive& b) { return a.live > b.live; });
}

}  // namespace leakscope
