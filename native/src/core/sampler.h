// The sampler: once a second it reads the process's RSS, each thread's state
// and CPU time, and the ledger, and keeps a history ring. Its data is read by
// the server thread under `mutex`.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "json.h"
#include "probes.h"
#include "tasks.h"

namespace leakscope {

// A history sample's live bytes when the ledger was not counting.
constexpr int64_t kUnknownLive = INT64_MIN;

struct HistorySample {
  uint64_t t_ms;
  uint64_t rss_bytes;
  int64_t live_bytes;  // kUnknownLive: not counted
  uint64_t tasks_live;
  uint32_t threads;
};

struct ThreadRecord {
  std::string name;
  char state = '?';
  uint64_t cpu_ticks = 0;
  uint64_t ops = 0;  // calls_mark (sampler.cc) at the previous refresh: moves with allocator calls
  uint64_t first_seen_ms = 0;
  uint64_t last_active_ms = 0;  // CPU time or allocator calls last moved
  // Remote-freed bytes at the previous refresh, and the part of them the
  // owner has had the chance to reclaim: an owner that entered the
  // allocator since the previous refresh reclaimed what was freed before it.
  // (Kept here, not on the hot path; exact to one refresh interval.)
  uint64_t remote_at_refresh = 0;
  uint64_t reclaim_mark = 0;
};

struct LedgerTotals {
  uint64_t alloc_count = 0, alloc_bytes = 0, free_count = 0, free_bytes = 0;
  int64_t sampled_live_bytes = 0;  // live threads' sampled blocks
  uint64_t samples_taken = 0, samples_settled = 0;
  uint64_t sampled_blocks() const { return samples_taken > samples_settled ? samples_taken - samples_settled : 0; }
};

class Sampler {
 public:
  Sampler(AllocatorProbe& probe, uint32_t history_seconds);
  // Runs on the sampler thread, once a second.
  void tick();
  // Runs on the server thread: threads and history as of now.
  void write_threads(JsonWriter& out);
  void write_history(JsonWriter& out);
  // Runs on the server thread: a site's live task counts, aligned with
  // write_history's samples; empty when the site has no history.
  void site_live_history(uint32_t site, std::vector<uint32_t>* out);
  static LedgerTotals ledger_totals();
  // Live bytes as the ledger's scope can know them: allocated − freed when it
  // counts every free, else the sampled blocks' estimate; 0 when off.
  static int64_t live_bytes(const LedgerTotals& totals);
  // Any thread but the sampler's: bytes other threads freed that their
  // owners have not reclaimed, summed over the threads, as of now.
  uint64_t unreclaimed_bytes();

  std::mutex mutex;

 private:
  void refresh_threads(uint64_t now_ms);  // mutex held
  void recycle_vanished_slots(uint64_t now_ms);
  void record_sites(size_t at, uint64_t* tasks_live);  // mutex held

  AllocatorProbe& probe_;
  std::map<int, ThreadRecord> threads_;
  std::vector<HistorySample> history_;
  // Live tasks per spawn site, one ring per site aligned with history_.
  std::map<uint32_t, std::vector<uint32_t>> site_history_;
  std::vector<SiteLive> site_live_scratch_;
  static constexpr size_t kMaxSitesWithHistory = 1024;  // 3.6 MB at most
  size_t history_next_ = 0;
  uint32_t history_capacity_;
  long ticks_per_second_;
};

}  // namespace leakscope
