#include "uv_census.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <algorithm>

extern "C" {
struct uv_work_s;
typedef void (*uv_work_cb)(uv_work_s* req);
typedef void (*uv_after_work_cb)(uv_work_s* req, int status);
int uv_queue_work(uv_loop_s* loop, uv_work_s* req, uv_work_cb work_cb, uv_after_work_cb after_work_cb);
size_t uv_req_size(int type);  // uv_req_type
struct uv_handle_s;
typedef void (*uv_walk_cb)(uv_handle_s* handle, void* arg);
void uv_walk(uv_loop_s* loop, uv_walk_cb walk_cb, void* arg);
int uv_is_active(const uv_handle_s* handle);
int uv_has_ref(const uv_handle_s* handle);
int uv_handle_get_type(const uv_handle_s* handle);  // uv_handle_type
const char* uv_handle_type_name(int type);
}

namespace leakscope {

namespace {

constexpr int kUvWork = 7;  // UV_WORK in uv_req_type

// Shared by the probe's work items and its caller; the last item's
// after-work callback (on the loop thread, after the caller returned) frees it.
struct PoolProbe {
  std::mutex lock;
  std::condition_variable arrived;
  std::vector<int> tids;
  size_t expected = 0;
  size_t outstanding = 0;  // work items whose after-work callback has not run
  std::chrono::steady_clock::time_point deadline;
};

// Every uv request starts with `void* data`.
PoolProbe*& probe_of(uv_work_s* req) { return *reinterpret_cast<PoolProbe**>(req); }

}  // namespace

std::vector<int> threadpool_tids(uv_loop_s* loop, int threads, int timeout_ms) {
  auto* probe = new PoolProbe();
  probe->expected = size_t(threads > 0 ? threads : 0);
  probe->deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const size_t req_size = uv_req_size(kUvWork);
  for (int i = 0; i < threads; ++i) {
    auto* req = static_cast<uv_work_s*>(calloc(1, req_size));
    if (req == nullptr) break;
    probe_of(req) = probe;
    const int rc = uv_queue_work(
        loop, req,
        [](uv_work_s* req) {  // on a pool thread
          PoolProbe* p = probe_of(req);
          std::unique_lock<std::mutex> lock(p->lock);
          p->tids.push_back(int(syscall(SYS_gettid)));
          p->arrived.notify_all();
          p->arrived.wait_until(lock, p->deadline, [p] { return p->tids.size() >= p->expected; });
        },
        [](uv_work_s* req, int) {  // on the loop thread
          PoolProbe* p = probe_of(req);
          free(req);
          bool last;
          {
            std::lock_guard<std::mutex> lock(p->lock);
            last = --p->outstanding == 0;
          }
          if (last) delete p;
        });
    if (rc != 0) {
      free(req);
      break;
    }
    std::lock_guard<std::mutex> lock(probe->lock);
    ++probe->outstanding;
  }
  std::unique_lock<std::mutex> lock(probe->lock);
  if (probe->outstanding == 0) {
    lock.unlock();
    delete probe;
    return {};
  }
  probe->expected = std::min(probe->expected, probe->outstanding);
  probe->arrived.wait_until(lock, probe->deadline, [probe] { return probe->tids.size() >= probe->expected; });
  std::vector<int> tids = probe->tids;
  std::sort(tids.begin(), tids.end());
  tids.erase(std::unique(tids.begin(), tids.end()), tids.end());
  return tids;
}

std::map<std::string, HandleCount> count_handles(uv_loop_s* loop) {
  std::map<std::string, HandleCount> counts;
  uv_walk(
      loop,
      [](uv_handle_s* handle, void* arg) {
        auto& counts = *static_cast<std::map<std::string, HandleCount>*>(arg);
        const char* name = uv_handle_type_name(uv_handle_get_type(handle));
        HandleCount& c = counts[name != nullptr ? name : "unknown"];
        ++c.total;
        const bool active = uv_is_active(handle) != 0;
        if (active) ++c.active;
        if (active && uv_has_ref(handle) != 0) ++c.referenced;
      },
      &counts);
  return counts;
}

}  // namespace leakscope
