#include "sampler.h"


#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "agent.h"
#include "ledger.h"
#include "proc.h"
#include "stacks.h"
#include "tasks.h"

namespace leakscope {

namespace {

uint64_t relaxed(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

// The slot of a live thread, or nullptr.
const ThreadSlot* slot_for_tid(const std::map<int, uint32_t>& index, int tid) {
  auto it = index.find(tid);
  return it == index.end() ? nullptr : &g_ledger.slots[it->second];
}

std::map<int, uint32_t> slots_by_tid() {
  std::map<int, uint32_t> index;
  const uint32_t used = std::min(g_ledger.high_water.load(), kMaxThreadSlots);
  for (uint32_t i = 0; i < used; ++i) {
    const uint32_t state = g_ledger.slots[i].state.load(std::memory_order_acquire);
    if (state == kSlotLive || state == kSlotExited) index[g_ledger.slots[i].tid.load()] = i;
  }
  return index;
}

// Remote-freed bytes since the owner last had the chance to reclaim them.
uint64_t unreclaimed_of(const ThreadSlot& slot, const ThreadRecord& record) {
  const uint64_t remote = relaxed(slot.remote_freed_bytes);
  return remote > record.reclaim_mark ? remote - record.reclaim_mark : 0;
}

}  // namespace

Sampler::Sampler(AllocatorProbe& probe, uint32_t history_seconds)
    : probe_(probe), history_capacity_(std::max<uint32_t>(history_seconds, 60)),
      ticks_per_second_(sysconf(_SC_CLK_TCK)) {
  history_.reserve(history_capacity_);
}

LedgerTotals Sampler::ledger_totals() {
  LedgerTotals t;
  const uint32_t used = std::min(g_ledger.high_water.load(), kMaxThreadSlots);
  for (uint32_t i = 0; i < used; ++i) {
    const ThreadSlot& s = g_ledger.slots[i];
    t.alloc_count += relaxed(s.alloc_count);
    t.alloc_bytes += relaxed(s.alloc_bytes);
    t.free_count += relaxed(s.free_count);
    t.free_bytes += relaxed(s.free_bytes);
    t.samples_taken += relaxed(s.samples_taken);
    t.samples_settled += relaxed(s.samples_settled);
    t.sampled_live_bytes += std::max<int64_t>(0, s.sampled_live_bytes.load(std::memory_order_relaxed));
  }
  const ExitedTotals& ex = g_ledger.exited;
  t.alloc_count += relaxed(ex.alloc_count);
  t.alloc_bytes += relaxed(ex.alloc_bytes);
  t.free_count += relaxed(ex.free_count);
  t.free_bytes += relaxed(ex.free_bytes);
  t.samples_taken += relaxed(ex.samples_taken);
  t.samples_settled += relaxed(ex.samples_settled);
  return t;
}

int64_t Sampler::live_bytes(const LedgerTotals& totals) {
  switch (g_ledger.scope.load(std::memory_order_relaxed)) {
    case kLedgerAll:
      return int64_t(totals.alloc_bytes - totals.free_bytes);
    case kLedgerSince:
      return totals.sampled_live_bytes;
    default:
      return 0;
  }
}

void Sampler::tick() {
  const uint64_t now = wall_ms();
  probe_.tick(now);
  std::lock_guard<std::mutex> lock(mutex);
  recycle_vanished_slots(now);
  refresh_threads(now);
  calibrate_poll_clock();
  g_tasks.sweep();
  g_stacks.checkpoint(now);
  const LedgerTotals totals = ledger_totals();
  const bool counting = g_ledger.scope.load(std::memory_order_relaxed) != kLedgerOff;
  HistorySample sample{now, self_rss_bytes(), counting ? live_bytes(totals) : kUnknownLive, 0,
                       uint32_t(threads_.size())};
  const size_t at = history_.size() < history_capacity_ ? history_.size() : history_next_;
  record_sites(at, &sample.tasks_live);
  if (history_.size() < history_capacity_) {
    history_.push_back(sample);
  } else {
    history_[history_next_] = sample;
    history_next_ = (history_next_ + 1) % history_capacity_;
  }
}

void Sampler::record_sites(size_t at, uint64_t* tasks_live) {
  g_tasks.live_by_site(&site_live_scratch_, tasks_live);
  for (const SiteLive& s : site_live_scratch_) {
    auto it = site_history_.find(s.site);
    if (it == site_history_.end()) {
      if (site_history_.size() >= kMaxSitesWithHistory) continue;
      it = site_history_.emplace(s.site, std::vector<uint32_t>(history_capacity_, 0)).first;
    }
    it->second[at] = s.live;
  }
}

void Sampler::site_live_history(uint32_t site, std::vector<uint32_t>* out) {
  std::lock_guard<std::mutex> lock(mutex);
  out->clear();
  auto it = site_history_.find(site);
  if (it == site_history_.end()) return;
  const size_t n = history_.size();
  for (size_t k = 0; k < n; ++k) out->push_back(it->second[(history_next_ + k) % n]);
}

void Sampler::recycle_vanished_slots(uint64_t now_ms) {
  const uint32_t used = std::min(g_ledger.high_water.load(), kMaxThreadSlots);
  for (uint32_t i = 0; i < used; ++i) {
    ThreadSlot& slot = g_ledger.slots[i];
    const uint32_t state = slot.state.load(std::memory_order_acquire);
    if (state != kSlotLive && state != kSlotExited) continue;
    // Gone from /proc means the kernel finished the thread: no code of it
    // can touch the slot any more.
    if (task_exists(slot.tid.load())) continue;
    if (slot.exited_ms.load() == 0) slot.exited_ms.store(now_ms);
    recycle_slot(i);
  }
}

namespace {

// A value that moves whenever the slot's thread calls the allocator. Its
// counts do, unless only samples are counted (Ledger::counts_sampled): then
// its sampling countdown, which every malloc moves, read from the thread's
// TLS through process_vm_readv, so that the TLS of a thread that exited
// meanwhile fails the read instead of faulting. Where the call is refused
// (a seccomp filter), samples alone move it.
uint64_t calls_mark(const ThreadSlot& slot) {
  const uint64_t counted = relaxed(slot.alloc_count) + relaxed(slot.free_count);
  const uintptr_t at = slot.countdown_at.load(std::memory_order_relaxed);
  if (!g_ledger.counts_sampled || at == 0) return counted;
  int64_t countdown = 0;
  iovec local{&countdown, sizeof countdown};
  iovec remote{reinterpret_cast<void*>(at), sizeof countdown};
  if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != ssize_t(sizeof countdown)) return counted;
  return counted + uint64_t(countdown);
}

}  // namespace

void Sampler::refresh_threads(uint64_t now_ms) {
  const std::map<int, uint32_t> index = slots_by_tid();
  std::map<int, ThreadRecord> next;
  for (int tid : self_task_ids()) {
    TaskStat stat;
    if (!read_task_stat(tid, &stat)) continue;
    ThreadRecord record;
    auto previous = threads_.find(tid);
    if (previous != threads_.end()) record = previous->second;
    const ThreadSlot* slot = slot_for_tid(index, tid);
    const uint64_t ops = slot ? calls_mark(*slot) : 0;
    const uint64_t remote = slot ? relaxed(slot->remote_freed_bytes) : 0;
    if (previous == threads_.end()) {
      record.first_seen_ms = now_ms;
      record.last_active_ms = now_ms;
    } else {
      if (stat.cpu_ticks != record.cpu_ticks || ops != record.ops) record.last_active_ms = now_ms;
      if (ops != record.ops) record.reclaim_mark = record.remote_at_refresh;
    }
    if (remote < record.reclaim_mark) record.reclaim_mark = 0;  // the slot was recycled
    record.remote_at_refresh = remote;
    record.name = stat.name;
    record.state = stat.state;
    record.cpu_ticks = stat.cpu_ticks;
    record.ops = ops;
    next[tid] = record;
  }
  threads_.swap(next);
}

uint64_t Sampler::unreclaimed_bytes() {
  std::lock_guard<std::mutex> lock(mutex);
  refresh_threads(wall_ms());
  const std::map<int, uint32_t> index = slots_by_tid();
  uint64_t total = 0;
  for (const auto& [tid, record] : threads_) {
    const ThreadSlot* slot = slot_for_tid(index, tid);
    if (slot != nullptr) total += unreclaimed_of(*slot, record);
  }
  return total;
}

void Sampler::write_threads(JsonWriter& out) {
  const uint64_t now = wall_ms();
  std::lock_guard<std::mutex> lock(mutex);
  refresh_threads(now);
  const std::map<int, uint32_t> index = slots_by_tid();
  out.begin_array();
  for (const auto& [tid, record] : threads_) {
    const ThreadSlot* slot = slot_for_tid(index, tid);
    out.begin_object()
        .field("tid", tid)
        .field("name", record.name)
        .field("state", std::string(1, record.state))
        .field("cpu_ms", record.cpu_ticks * 1000 / uint64_t(ticks_per_second_))
        .field("idle_ms", now - record.last_active_ms)
        .field("observed_ms", now - record.first_seen_ms)
        .field("agent_thread", is_agent_thread(tid));
    if (slot != nullptr) {
      out.field("start_routine", symbolize(slot->start_routine.load()))
          .field("creator_tid", int64_t(slot->creator_tid.load()))
          .field("created_ms", relaxed(slot->created_ms));
      out.key("heap").begin_object()
          .field("alloc_count", relaxed(slot->alloc_count))
          .field("allocated_bytes", relaxed(slot->alloc_bytes))
          .field("free_count", relaxed(slot->free_count))
          .field("freed_bytes", relaxed(slot->free_bytes))
          .field("live_bytes", std::max<int64_t>(0, slot->sampled_live_bytes.load()))
          .field("remote_freed_count", relaxed(slot->remote_freed_count))
          .field("remote_freed_bytes", relaxed(slot->remote_freed_bytes))
          .field("unreclaimed_bytes", unreclaimed_of(*slot, record))
          .end_object();
    }
    out.end_object();
  }
  out.end_array();
}

void Sampler::write_history(JsonWriter& out) {
  std::lock_guard<std::mutex> lock(mutex);
  out.begin_array();
  const size_t n = history_.size();
  for (size_t k = 0; k < n; ++k) {
    const HistorySample& s = history_[(history_next_ + k) % n];
    out.begin_object()
        .field("t_ms", s.t_ms)
        .field("rss_bytes", s.rss_bytes)
        .key("live_bytes");
    // Before the ledger counted, or before its last restart: not comparable.
    if (s.live_bytes == kUnknownLive || s.t_ms < g_ledger.since_ms.load(std::memory_order_relaxed)) out.null();
    else out.value(s.live_bytes);
    out
        .field("tasks_live", s.tasks_live)
        .field("threads", s.threads)
        .end_object();
  }
  out.end_array();
}

}  // namespace leakscope
