// The registry's part of a snapshot: per-site aggregates over every task and
// one page of task items. Runs on the server thread while the runtime keeps
// running: it only reads the records, so no runtime thread ever waits for it.
// A task that changes while it is read is reported as one or the other.
#include <algorithm>
#include <cctype>
#include <cstdint>

#include "stacks.h"
#include "tasks.h"

namespace leakscope {

namespace {

struct SiteAggregate {
  uint64_t live = 0, running = 0, scheduled = 0, idle = 0, idle_over = 0, no_waker = 0, retained = 0;
  uint64_t scheduled_over = 0, never_polled_over = 0;
  uint64_t oldest_idle_ns = 0, longest_poll_ns = 0, running_longest_ns = 0, scheduled_longest_ns = 0;
  uint64_t polls = 0, busy_ns = 0, wakes = 0, allocated_bytes = 0;
};

struct Candidate {
  uint32_t index;
  uint64_t key;  // larger first
  uint64_t id;
};

bool better(const Candidate& a, const Candidate& b) { return a.key != b.key ? a.key > b.key : a.id < b.id; }

// The `keep` best candidates offered, the worst of them on top of a heap: a
// page near the top of 100,000 tasks holds 64 of them, not 100,000.
class BestCandidates {
 public:
  explicit BestCandidates(size_t keep, size_t expected) : keep_(keep) { heap_.reserve(std::min(keep, expected)); }

  void offer(const Candidate& c) {
    ++offered_;
    if (heap_.size() < keep_) {
      heap_.push_back(c);
      std::push_heap(heap_.begin(), heap_.end(), better);
    } else if (keep_ > 0 && better(c, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), better);
      heap_.back() = c;
      std::push_heap(heap_.begin(), heap_.end(), better);
    }
  }

  size_t offered() const { return offered_; }

  // Best first; call once, after the last offer.
  const std::vector<Candidate>& sorted() {
    std::sort_heap(heap_.begin(), heap_.end(), better);
    return heap_;
  }

 private:
  size_t keep_;
  size_t offered_ = 0;
  std::vector<Candidate> heap_;
};

double ms(uint64_t ns) { return double(ns / 1000) / 1000.0; }  // µs precision

bool contains_ignoring_case(std::string_view text, const std::string& needle) {
  if (needle.empty()) return true;
  auto it = std::search(text.begin(), text.end(), needle.begin(), needle.end(),
                        [](char a, char b) { return std::tolower(uint8_t(a)) == std::tolower(uint8_t(b)); });
  return it != text.end();
}

std::string_view site_part(std::string_view key) {
  const size_t sep = key.find('\x1f');
  return sep == std::string_view::npos ? key : key.substr(sep + 1);
}

// Since when a task has had nothing to do: its last poll's end, or its spawn.
uint64_t idle_since(const TaskRecord& r) {
  return std::max(r.last_poll_end_ns.load(std::memory_order_relaxed), r.created_ns);
}

// Since when a scheduled task has waited to be polled: its spawn, if it was
// never polled; else its last wake (or poll, whichever came later).
uint64_t scheduled_since(const TaskRecord& r) {
  if (r.polls.load(std::memory_order_relaxed) == 0) return r.created_ns;
  return std::max(r.last_wake_ns.load(std::memory_order_relaxed), r.last_poll_end_ns.load(std::memory_order_relaxed));
}

// A live task that is neither running nor woken.
bool is_idle(uint32_t state) { return !(state & (kTaskCompleted | kTaskRunning | kTaskNotified)); }

const char* state_name(uint32_t state) {
  if (state & kTaskCompleted) return "completed";
  if (state & kTaskRunning) return "running";
  if (state & kTaskNotified) return "scheduled";
  return "idle";
}

// The query's sort and state, named once per request rather than compared
// as strings for each of up to a million records.
enum class SortKey { kIdle, kAge, kPolls, kBusy, kAllocated, kLiveBytes, kId };

SortKey sort_key(const std::string& name) {
  if (name == "age") return SortKey::kAge;
  if (name == "polls") return SortKey::kPolls;
  if (name == "busy") return SortKey::kBusy;
  if (name == "allocated") return SortKey::kAllocated;
  if (name == "live_bytes") return SortKey::kLiveBytes;
  if (name == "id") return SortKey::kId;
  return SortKey::kIdle;
}

// Which task states the page lists: "all", "live", or one state by name.
struct StateFilter {
  bool all = false, live = false;
  std::string_view only;  // a state_name result

  explicit StateFilter(const std::string& wanted) : all(wanted == "all"), live(wanted == "live") {
    if (!all && !live) only = wanted;
  }

  bool selects(uint32_t state) const {
    if (all) return true;
    if (live) return !(state & kTaskCompleted);
    return only == state_name(state);
  }
};

}  // namespace

void TaskRegistry::write(JsonWriter& out, const TaskQuery& query, const SiteHistoryFn& site_history) const {
  out.begin_object();
  if (records_ == nullptr) {
    out.field("enabled", false).end_object();
    return;
  }
  const uint64_t now = mono_ns();
  const uint64_t threshold_ns = query.idle_threshold_ms * 1000000;
  std::vector<SiteAggregate> sites(sites_.index_limit());
  std::vector<int8_t> site_matches(sites_.index_limit(), -1);
  uint64_t by_state[4] = {0, 0, 0, 0};  // running, scheduled, idle, completed (retained)
  uint64_t last_poll_end_ns = 0;        // of any live task: is the runtime polling at all
  const SortKey sort = sort_key(query.sort);
  const StateFilter listed(query.state);

  const uint32_t used = std::min(high_water_.load(std::memory_order_acquire), capacity_);
  const size_t page_end = query.offset + std::min<size_t>(query.limit, SIZE_MAX - query.offset);
  BestCandidates candidates(page_end, used);
  for (uint32_t i = 0; i < used; ++i) {
    const TaskRecord& r = records_[i];
    const uint64_t id = r.id.load(std::memory_order_acquire);
    if (id == 0) continue;
    const uint32_t state = r.state.load(std::memory_order_acquire);
    const uint32_t site = r.site;
    if (site == 0 || site >= sites.size()) continue;
    SiteAggregate& a = sites[site];
    const uint64_t since = idle_since(r);
    const uint64_t idle_ns = now > since ? now - since : 0;
    uint64_t key = 0;
    const uint64_t w = task_weight(state);  // a sampled task counts for the ones it stands for
    last_poll_end_ns = std::max(last_poll_end_ns, r.last_poll_end_ns.load(std::memory_order_relaxed));
    if (state & kTaskCompleted) {
      by_state[3] += w;
      a.retained += w;
    } else {
      a.live += w;
      a.polls += r.polls.load(std::memory_order_relaxed);
      a.busy_ns += r.busy_ns.load(std::memory_order_relaxed);
      a.wakes += r.wakes.load(std::memory_order_relaxed);
      a.allocated_bytes += r.allocated_bytes.load(std::memory_order_relaxed);
      a.longest_poll_ns = std::max(a.longest_poll_ns, r.longest_poll_ns.load(std::memory_order_relaxed));
      if (r.polls.load(std::memory_order_relaxed) == 0 && !(state & kTaskRunning) && now > r.created_ns && now - r.created_ns >= threshold_ns)
        a.never_polled_over += w;
      if (state & kTaskRunning) {
        by_state[0] += w;
        a.running += w;
        const uint64_t started = r.poll_started_ns.load(std::memory_order_relaxed);
        if (started != 0 && now > started) a.running_longest_ns = std::max(a.running_longest_ns, now - started);
      } else if (state & kTaskNotified) {
        by_state[1] += w;
        a.scheduled += w;
        const uint64_t since_ns = scheduled_since(r);
        const uint64_t waited = now > since_ns ? now - since_ns : 0;
        a.scheduled_longest_ns = std::max(a.scheduled_longest_ns, waited);
        if (waited >= threshold_ns) a.scheduled_over += w;
      } else {
        by_state[2] += w;
        a.idle += w;
        a.oldest_idle_ns = std::max(a.oldest_idle_ns, idle_ns);
        if (idle_ns >= threshold_ns) a.idle_over += w;
        const uint32_t kind = sites_stats_[site].kind.load(std::memory_order_relaxed);
        if (kind_tracks_wakers_[kind].load(std::memory_order_relaxed) && r.wakers.load(std::memory_order_relaxed) <= 0)
          a.no_waker += w;
        key = idle_ns;
      }
    }
    // The page of items.
    if (!listed.selects(state)) continue;
    int8_t& matches = site_matches[site];
    if (matches < 0) {
      const std::string_view text = sites_.text(site);
      matches = (query.site.empty() || site_part(text) == query.site) ? 1 : 0;
      if (matches && !query.filter.empty()) matches = contains_ignoring_case(text, query.filter) ? 1 : 2;
    }
    if (matches == 0) continue;
    if (matches == 2 && !contains_ignoring_case(names_.text(r.name), query.filter)) continue;
    switch (sort) {
      case SortKey::kIdle: break;  // `key` is the idle time already
      case SortKey::kAge: key = ~r.created_ns; break;
      case SortKey::kPolls: key = r.polls.load(std::memory_order_relaxed); break;
      case SortKey::kBusy: key = r.busy_ns.load(std::memory_order_relaxed); break;
      case SortKey::kAllocated: key = r.allocated_bytes.load(std::memory_order_relaxed); break;
      case SortKey::kLiveBytes: key = uint64_t(std::max<int64_t>(0, r.live_bytes.load(std::memory_order_relaxed))); break;
      case SortKey::kId: key = ~id; break;
    }
    candidates.offer(Candidate{i, key, id});
  }

  // Totals and sites, most live tasks first.
  std::vector<uint32_t> order;
  std::vector<SiteTotals> totals_of_listed;  // in the order of `order`, before sorting
  std::vector<uint32_t> totals_at(sites.size(), 0);
  uint64_t spawned = 0, completed = 0;
  const uint32_t site_count = std::min(site_count_.load(std::memory_order_acquire), uint32_t(sites.size() - 1));
  for (uint32_t k = 0; k < site_count; ++k) {
    const uint32_t site = site_list_[k].load(std::memory_order_acquire);
    if (site == 0) continue;
    order.push_back(site);
    totals_at[site] = uint32_t(totals_of_listed.size());
    totals_of_listed.push_back(sites_stats_[site].totals());
    spawned += totals_of_listed.back().spawned;
    completed += totals_of_listed.back().completed;
  }
  auto totals = [&](uint32_t site) -> const SiteTotals& { return totals_of_listed[totals_at[site]]; };
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return sites[a].live != sites[b].live ? sites[a].live > sites[b].live : totals(a).spawned > totals(b).spawned;
  });

  out.field("enabled", true)
      .field("capacity", uint64_t(capacity_))
      .field("live", by_state[0] + by_state[1] + by_state[2])
      .field("spawned", spawned)
      .field("completed", completed)
      .field("retained_completed", by_state[3])
      .field("retain_ms", retain_ns_ / 1000000)
      .field("retain_max", uint64_t(retain_max_))
      .field("dropped_spawns", dropped_spawns())
      .field("dropped_strings", dropped_strings())
      .field("poll_clock", poll_clock_name())
      .field("idle_threshold_ms", query.idle_threshold_ms);
  if (last_poll_end_ns != 0 && now >= last_poll_end_ns) out.field("last_poll_ms_ago", ms(now - last_poll_end_ns));
  else out.key("last_poll_ms_ago").null();
  out.key("by_state").begin_object()
      .field("running", by_state[0])
      .field("scheduled", by_state[1])
      .field("idle", by_state[2])
      .field("completed", by_state[3])
      .end_object();
  out.key("wakers_tracked_kinds").begin_array();
  for (uint32_t kind = 1; kind <= 64; ++kind)
    if (kind_tracks_wakers_[kind].load(std::memory_order_relaxed)) out.value(std::string(kinds_.text(kind)));
  out.end_array();

  out.field("sites_total", uint64_t(order.size()));
  out.key("sites").begin_array();
  std::vector<uint32_t> history;
  std::vector<std::pair<uint32_t, int64_t>> site_stacks;
  for (size_t k = 0; k < order.size() && k < query.sites_limit; ++k) {
    const uint32_t site = order[k];
    const SiteAggregate& a = sites[site];
    const SiteTotals& s = totals(site);
    const std::string_view key = sites_.text(site);
    const size_t sep = key.find('\x1f');
    out.begin_object()
        .field("site", std::string(site_part(key)))
        .field("kind", std::string(sep == std::string_view::npos ? "task" : key.substr(0, sep)))
        .field("live", a.live)
        .field("running", a.running)
        .field("scheduled", a.scheduled)
        .field("idle", a.idle)
        .field("idle_over_threshold", a.idle_over)
        .field("oldest_idle_ms", ms(a.oldest_idle_ns))
        .field("no_waker", a.no_waker)
        .field("spawned", s.spawned)
        .field("completed", s.completed)
        .field("polls", a.polls + s.done_polls)
        .field("busy_ms", ms(a.busy_ns + s.done_busy_ns))
        .field("wakes", a.wakes + s.done_wakes)
        .field("longest_poll_ms", ms(std::max({a.longest_poll_ns, a.running_longest_ns, s.done_longest_poll_ns})))
        .field("running_longest_ms", ms(a.running_longest_ns))
        .field("scheduled_over_threshold", a.scheduled_over)
        .field("never_polled", a.never_polled_over)
        .field("scheduled_longest_ms", ms(a.scheduled_longest_ns));
    // The slow polls of the last minute; null when none.
    const SiteStats& st = sites_stats_[site];
    const uint64_t slow_end = st.last_slow_poll_end_ns.load(std::memory_order_relaxed);
    if (slow_end != 0 && now >= slow_end && now - slow_end <= kSlowPollMemoryNs)
      out.field("recent_slow_poll_ms", ms(st.recent_slow_poll_ns.load(std::memory_order_relaxed))).field("recent_slow_poll_ms_ago", ms(now - slow_end));
    else out.key("recent_slow_poll_ms").null().key("recent_slow_poll_ms_ago").null();
    out
        .field("allocated_bytes", a.allocated_bytes + s.done_allocated_bytes)
        .field("live_bytes", std::max<int64_t>(0, s.live_bytes));
    // Its live bytes by allocation stack (stacks.h): the agent's stack ids.
    g_stacks.site_stacks(site, 5, &site_stacks);
    out.key("stacks").begin_array();
    for (const auto& [id, live] : site_stacks) out.begin_object().field("stack", uint64_t(id)).field("live_bytes", live).end_object();
    out.end_array();
    out.key("poll_histogram").begin_array();
    for (uint64_t bucket : s.poll_histogram) out.value(bucket);
    out.end_array();
    if (k < query.site_history_limit) {
      history.clear();
      site_history(site, &history);
      if (!history.empty()) {
        out.key("live_history").begin_array();
        for (uint32_t v : history) out.value(v);
        out.end_array();
      }
    }
    out.end_object();
  }
  out.end_array();

  // The page: the `limit` best after `offset`, by the chosen key.
  const size_t total = candidates.offered();
  const std::vector<Candidate>& best = candidates.sorted();
  const size_t begin = std::min<size_t>(query.offset, best.size());
  const size_t end = std::min<size_t>(begin + query.limit, best.size());
  out.field("items_total", uint64_t(total))
      .field("items_offset", uint64_t(begin))
      .field("items_sort", query.sort)
      .field("items_state", query.state);
  out.key("items").begin_array();
  for (size_t k = begin; k < end; ++k) {
    const TaskRecord& r = records_[best[k].index];
    const uint64_t id = r.id.load(std::memory_order_acquire);
    if (id != best[k].id) continue;  // forgotten meanwhile
    const uint32_t state = r.state.load(std::memory_order_acquire);
    const std::string_view key = sites_.text(r.site);
    const size_t sep = key.find('\x1f');
    const uint32_t kind = sites_stats_[r.site].kind.load(std::memory_order_relaxed);
    const uint64_t since = idle_since(r);
    const uint64_t started = r.poll_started_ns.load(std::memory_order_relaxed);
    const uint64_t last_wake = r.last_wake_ns.load(std::memory_order_relaxed);
    const uint64_t ended = r.ended_ns.load(std::memory_order_relaxed);
    out.begin_object()
        .field("id", id)
        .field("kind", std::string(sep == std::string_view::npos ? "task" : key.substr(0, sep)))
        .field("name", std::string(names_.text(r.name)))
        .field("site", std::string(site_part(key)))
        .field("parent_id", r.parent_id)
        .field("state", state_name(state))
        .field("created_ms", base_wall_ms_ + (r.created_ns - base_mono_ns_) / 1000000)
        .field("age_ms", ms(now - std::min(now, r.created_ns)))
        .field("idle_ms", is_idle(state) ? ms(now - std::min(now, since)) : 0.0)
        .field("running_for_ms", (state & kTaskRunning) && started != 0 ? ms(now - std::min(now, started)) : 0.0)
        .field("polls", r.polls.load(std::memory_order_relaxed))
        .field("busy_ms", ms(r.busy_ns.load(std::memory_order_relaxed)))
        .field("longest_poll_ms", ms(r.longest_poll_ns.load(std::memory_order_relaxed)))
        .field("wakes", r.wakes.load(std::memory_order_relaxed));
    if (last_wake != 0) out.field("last_wake_ms_ago", ms(now - std::min(now, last_wake)));
    else out.key("last_wake_ms_ago").null();
    if (kind_tracks_wakers_[kind].load(std::memory_order_relaxed)) out.field("wakers", int64_t(r.wakers.load()));
    else out.key("wakers").null();
    out.field("allocated_bytes", r.allocated_bytes.load(std::memory_order_relaxed))
        .field("live_bytes", std::max<int64_t>(0, r.live_bytes.load(std::memory_order_relaxed)));
    if (state & kTaskCompleted) out.field("completed_ms_ago", ms(now - std::min(now, ended)));
    if (task_weight(state) > 1) out.field("weight", task_weight(state));
    out.end_object();
  }
  out.end_array();
  out.end_object();
}

void TaskRegistry::count_by_kind(uint64_t idle_threshold_ms, std::vector<KindCount>* out) const {
  out->clear();
  if (records_ == nullptr) return;
  const uint64_t now = mono_ns();
  const uint64_t threshold_ns = idle_threshold_ms * 1000000;
  std::vector<KindCount> by_index(kinds_.index_limit());
  const uint32_t used = std::min(high_water_.load(std::memory_order_acquire), capacity_);
  for (uint32_t i = 0; i < used; ++i) {
    const TaskRecord& r = records_[i];
    if (r.id.load(std::memory_order_acquire) == 0) continue;
    const uint32_t state = r.state.load(std::memory_order_acquire);
    if ((state & kTaskCompleted) || r.site == 0 || r.site >= sites_.index_limit()) continue;
    const uint32_t kind = sites_stats_[r.site].kind.load(std::memory_order_relaxed);
    if (kind >= by_index.size()) continue;
    KindCount& c = by_index[kind];
    const uint64_t w = task_weight(state);
    c.live += w;
    const uint64_t since = idle_since(r);
    if (is_idle(state) && now > since && now - since >= threshold_ns) c.idle_over += w;
  }
  for (uint32_t kind = 1; kind < by_index.size(); ++kind) {
    if (by_index[kind].live == 0) continue;
    by_index[kind].kind = std::string(kinds_.text(kind));
    out->push_back(std::move(by_index[kind]));
  }
}

}  // namespace leakscope
