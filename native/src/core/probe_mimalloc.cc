// mimalloc 2.0: its version and process counters. mimalloc keeps no
// statistic of blocks waiting on a page's thread-free list (a release build
// has MI_STAT off), which is why the ledger measures remote frees itself.
// mi_collect(true) collects the calling thread's heap and abandoned segments
// only: memory waiting for a sleeping owner thread is out of its reach.
#include <dlfcn.h>

#include "probes.h"

namespace leakscope {

namespace {

class MimallocProbe : public AllocatorProbe {
 public:
  explicit MimallocProbe(const MimallocCalls& calls) : version_(calls.version), process_info_(calls.process_info), collect_(calls.collect) {}
  const char* name() const override { return "mimalloc"; }
  std::string version() const override {
    if (version_ == nullptr) return "";
    const int v = version_();  // 209 for 2.0.9; from 2.1 on two digits each: 30302 for 3.3.2
    if (v >= 10000) return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
    return std::to_string(v / 100) + "." + std::to_string((v / 10) % 10) + "." + std::to_string(v % 10);
  }

  void write_stats(JsonWriter& out) override {
    if (process_info_ == nullptr) return;
    size_t elapsed = 0, user = 0, sys = 0, rss = 0, peak_rss = 0, commit = 0, peak_commit = 0, faults = 0;
    process_info_(&elapsed, &user, &sys, &rss, &peak_rss, &commit, &peak_commit, &faults);
    out.field("committed_bytes", uint64_t(commit)).field("peak_committed_bytes", uint64_t(peak_commit));
  }

  const char* reclaim_action() const override { return "mi_collect(true)"; }
  bool reclaim() override {
    if (collect_ == nullptr) return false;
    collect_(true);
    return true;
  }

 private:
  int (*version_)() = nullptr;
  decltype(MimallocCalls::process_info) process_info_ = nullptr;
  void (*collect_)(bool) = nullptr;
};

}  // namespace

std::unique_ptr<AllocatorProbe> make_mimalloc_probe(const MimallocCalls* calls) {
  if (calls != nullptr) return std::make_unique<MimallocProbe>(*calls);
  MimallocCalls found{};
  found.version = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "mi_version"));
  found.process_info = reinterpret_cast<decltype(found.process_info)>(dlsym(RTLD_DEFAULT, "mi_process_info"));
  found.collect = reinterpret_cast<void (*)(bool)>(dlsym(RTLD_DEFAULT, "mi_collect"));
  return std::make_unique<MimallocProbe>(found);
}

}  // namespace leakscope
