// jemalloc: mallctl statistics, global and per arena, and a 1 Hz record of
// when each arena last served an allocation or a free. Without background
// threads, jemalloc decays dirty pages only when an arena is touched, so an
// arena nobody touches keeps them: the CLI needs "idle for how long" beside
// "how many dirty pages". See jemalloc's TUNING.md, "background_thread".
#include <dlfcn.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <sys/types.h>

#include "probes.h"

namespace leakscope {

namespace {

constexpr unsigned kAllArenas = 4096;  // MALLCTL_ARENAS_ALL

// Every mallctl runs on the agent's sampler thread, once a second (or on
// the program's thread that starts the agent): jemalloc gives a thread an
// arena (and, with background threads on, perhaps a background thread) at
// its first call, and one agent thread is the least the probe can cost.
// The server thread writes what the sampler gathered, at most a second old,
// and hands reclaim over to it. The sampler's arena holds nothing of the
// agent's (its blocks come from the agent's heap, agent_heap.h); it is
// reported as `agent_arena`.
class JemallocProbe : public AllocatorProbe {
 public:
  explicit JemallocProbe(Mallctl mallctl) : mallctl_(mallctl) {
    const char* v = nullptr;
    if (read("version", &v) && v != nullptr) version_ = v;
  }
  const char* name() const override { return "jemalloc"; }

  std::string version() const override { return version_; }

  void tick(uint64_t now_ms) override {
    std::unique_lock<std::mutex> lock(mutex_);
    if (reclaim_wanted_) {
      const std::string name = "arena." + std::to_string(kAllArenas) + ".purge";
      reclaim_done_ = mallctl_ != nullptr && mallctl_(name.c_str(), nullptr, nullptr, nullptr, 0) == 0;
      reclaim_wanted_ = false;
      reclaimed_.notify_all();
    }
    refresh_epoch();
    unsigned arena = 0;
    if (read("thread.arena", &arena)) agent_arena_ = int64_t(arena);
    unsigned narenas = 0;
    if (!read("arenas.narenas", &narenas)) return;
    for (unsigned i = 0; i < narenas; ++i) {
      uint64_t ops;
      if (!arena_ops(i, &ops)) continue;
      Activity& a = activity_[i];
      if (a.last_change_ms == 0 || ops != a.ops) {
        a.ops = ops;
        a.last_change_ms = now_ms;
      }
    }
    JsonWriter out;
    out.begin_object();
    gather(out);
    out.end_object();
    // The fields, without the braces, for the server's open object.
    const std::string& json = out.str();
    stats_json_ = json.size() > 2 ? json.substr(1, json.size() - 2) : std::string();
  }

  void write_stats(JsonWriter& out) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stats_json_.empty()) out.fields_raw(stats_json_);
  }

  const char* reclaim_action() const override { return "mallctl(\"arena.<all>.purge\")"; }
  // Runs on the server thread: the sampler purges at its next tick (within
  // a second).
  bool reclaim() override {
    std::unique_lock<std::mutex> lock(mutex_);
    reclaim_wanted_ = true;
    reclaim_done_ = false;
    reclaimed_.wait_for(lock, std::chrono::seconds(5), [this] { return !reclaim_wanted_; });
    return reclaim_done_;
  }

 private:
  // The allocator's statistics as fields of the open object (mutex held,
  // sampler thread).
  void gather(JsonWriter& out) {
    size_t page = 4096;
    read("arenas.page", &page);
    out.field("page_bytes", uint64_t(page));
    for (const char* stat : {"allocated", "active", "metadata", "resident", "mapped", "retained"}) {
      size_t v = 0;
      if (read((std::string("stats.") + stat).c_str(), &v)) out.field((std::string(stat) + "_bytes").c_str(), uint64_t(v));
    }
    bool background = false;
    if (read("background_thread", &background)) out.field("background_thread", background);
    ssize_t decay = 0;
    if (read("opt.dirty_decay_ms", &decay)) out.field("dirty_decay_ms", int64_t(decay));
    if (agent_arena_ >= 0) out.field("agent_arena", agent_arena_);
    unsigned narenas = 0;
    read("arenas.narenas", &narenas);
    out.key("arenas").begin_array();
    for (unsigned i = 0; i < narenas; ++i) {
      uint64_t ops;
      if (!arena_ops(i, &ops)) continue;
      const std::string p = "stats.arenas." + std::to_string(i) + ".";
      unsigned nthreads = 0;
      size_t pactive = 0, pdirty = 0, pmuzzy = 0, small = 0, large = 0, tcache = 0;
      read((p + "nthreads").c_str(), &nthreads);
      read((p + "pactive").c_str(), &pactive);
      read((p + "pdirty").c_str(), &pdirty);
      read((p + "pmuzzy").c_str(), &pmuzzy);
      read((p + "small.allocated").c_str(), &small);
      read((p + "large.allocated").c_str(), &large);
      read((p + "tcache_bytes").c_str(), &tcache);
      ssize_t arena_decay = decay;
      read(("arena." + std::to_string(i) + ".dirty_decay_ms").c_str(), &arena_decay);
      out.begin_object()
          .field("index", i)
          .field("threads", nthreads)
          .field("active_bytes", uint64_t(pactive) * page)
          .field("dirty_bytes", uint64_t(pdirty) * page)
          .field("muzzy_bytes", uint64_t(pmuzzy) * page)
          .field("allocated_bytes", uint64_t(small + large))
          .field("tcache_bytes", uint64_t(tcache))
          .field("operations", ops)
          .field("dirty_decay_ms", int64_t(arena_decay));
      auto it = activity_.find(i);
      if (it != activity_.end()) out.field("last_active_ms", it->second.last_change_ms);
      out.end_object();
    }
    out.end_array();
  }

  struct Activity {
    uint64_t ops = 0;
    uint64_t last_change_ms = 0;
  };

  template <typename T>
  bool read(const char* name, T* value) const {
    if (mallctl_ == nullptr) return false;
    size_t size = sizeof(T);
    return mallctl_(name, value, &size, nullptr, 0) == 0;
  }

  void refresh_epoch() {
    uint64_t epoch = 1;
    size_t size = sizeof epoch;
    if (mallctl_ != nullptr) mallctl_("epoch", &epoch, &size, &epoch, size);
  }

  bool arena_ops(unsigned i, uint64_t* ops) const {
    bool initialized = false;
    if (!read(("arena." + std::to_string(i) + ".initialized").c_str(), &initialized) || !initialized) return false;
    const std::string p = "stats.arenas." + std::to_string(i) + ".";
    uint64_t total = 0;
    for (const char* k : {"small.nmalloc", "small.ndalloc", "large.nmalloc", "large.ndalloc"}) {
      uint64_t v = 0;
      read((p + k).c_str(), &v);
      total += v;
    }
    *ops = total;
    return true;
  }

  Mallctl mallctl_ = nullptr;
  std::string version_;
  std::mutex mutex_;
  std::condition_variable reclaimed_;
  bool reclaim_wanted_ = false;
  bool reclaim_done_ = false;
  int64_t agent_arena_ = -1;
  std::string stats_json_;
  std::map<unsigned, Activity> activity_;
};

}  // namespace

std::unique_ptr<AllocatorProbe> make_jemalloc_probe(Mallctl mallctl) {
  return std::make_unique<JemallocProbe>(mallctl != nullptr ? mallctl : reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl")));
}

}  // namespace leakscope
