// The way in for a Rust service: leakscope's crate links this module and the
// agent core into the program, wraps its #[global_allocator], and calls here.
// No symbol is interposed: the crate reports each allocation and free itself,
// with the size its Layout gives, and names the allocator it wraps so that
// the probe can read that allocator's statistics (a statically linked
// mimalloc or jemalloc exports nothing to look up).
#include <pthread.h>
#include <string.h>

#include <atomic>
#include <memory>

#include "../core/agent.h"
#include "../core/ledger.h"
#include "../core/probes.h"
#include "../core/tasks.h"

using namespace leakscope;

namespace {

pthread_key_t exit_key;
std::atomic<bool> exit_key_ready{false};

// Runs on a thread as it exits, after its own TLS destructors.
void on_thread_exit(void*) { mark_thread_exited(t_state); }

void after_fork_in_child() { agent_after_fork_child(); }

// A thread's first counted call: its slot, and a note to free it at exit.
// Threads are not started through the agent here, so their start routine is
// unknown; /proc names them.
bool first_call(ThreadState& ts) {
  if (!claim_counting_slot(ts)) return false;
  if (exit_key_ready.load(std::memory_order_acquire)) pthread_setspecific(exit_key, &ts);
  return true;
}

// The rare allocation: a thread's first, one while the agent does not count
// (yet), a sample. The countdown is above zero only while the thread has a
// slot, so the common one is a flag, a subtract and two adds.
__attribute__((noinline)) void alloc_slow(ThreadState& ts, void* block, size_t size) {
  switch (slow_call(ts, size, first_call)) {
    case SlowCall::kUncounted:
      return;
    case SlowCall::kCounted:
      return count_alloc_in(*ts.slot, size);
    case SlowCall::kSampled:
      break;
  }
  ts.busy = 1;
  count_alloc_in(*ts.slot, size);
  take_sample(ts, block, size, size);
  ts.busy = 0;
}

__attribute__((noinline)) void free_slow(ThreadState& ts, void* block, size_t size) {
  if (ts.slot == nullptr && !first_call(ts)) return;
  ts.busy = 1;
  on_free(ts, block, size);
  ts.busy = 0;
}

std::unique_ptr<AllocatorProbe> probe_for(const char* allocator, const void* calls) {
  if (strcmp(allocator, "glibc") == 0) return make_glibc_probe();
  if (strcmp(allocator, "mimalloc") == 0) return make_mimalloc_probe(static_cast<const MimallocCalls*>(calls));
  if (strcmp(allocator, "jemalloc") == 0) return make_jemalloc_probe(reinterpret_cast<Mallctl>(const_cast<void*>(calls)));
  return make_unknown_probe(allocator, "");
}

}  // namespace

extern "C" {

// Starts the agent once, in mode "crate". `allocator` is glibc, mimalloc,
// jemalloc or any other name; `calls` is the allocator's MimallocCalls, its
// mallctl, or null. Returns false when the agent was running already.
bool leakscope_crate_start(const char* allocator, const void* calls) {
  static std::atomic<bool> started{false};
  if (started.exchange(true)) return false;
  ThreadState& ts = t_state;
  ts.busy = 1;
  g_real_pthread_create = pthread_create;
  if (pthread_key_create(&exit_key, on_thread_exit) == 0) exit_key_ready.store(true, std::memory_order_release);
  pthread_atfork(nullptr, nullptr, after_fork_in_child);
  AgentConfig config = config_from_env();
  config.mode = "crate";
  ts.busy = 0;
  agent_start(config, probe_for(allocator, calls));
  return true;
}

// Hot path: after the wrapped allocator returned `block` of `size` bytes.
void leakscope_crate_alloc(void* block, size_t size) {
  ThreadState& ts = t_state;
  if (__builtin_expect(ts.busy != 0, 0)) return;
  if (__builtin_expect(detail::count_down(ts, size), 0)) return alloc_slow(ts, block, size);
  count_alloc_in(*ts.slot, size);
}

// Hot path: before the wrapped allocator frees `block` of `size` bytes.
void leakscope_crate_free(void* block, size_t size) {
  ThreadState& ts = t_state;
  ThreadSlot* slot = ts.slot;
  if (__builtin_expect(ts.busy != 0, 0)) return;
  if (__builtin_expect(slot == nullptr, 0)) return free_slow(ts, block, size);
  count_free_in(*slot, size);
  if (__builtin_expect(g_ownership.might_hold(uintptr_t(block)), 0)) {
    ts.busy = 1;
    settle_if_sampled(ts, block, size);
    ts.busy = 0;
  }
}

// The Tokio layer's spawn: a task spawned at a site it already has a handle
// for (its `task_site` answer, kind index << 16 | site index; 0 when the
// agent's tables are full). Tokio spawns at a few places many times, so the
// layer interns each place once and skips formatting and hashing its text.
uint32_t leakscope_crate_task_site(const char* kind, const char* site) { return g_tasks.site_handle(kind, site); }
uint64_t leakscope_crate_task_spawn_at(uint32_t site, const char* name, uint64_t parent_id) {
  return g_tasks.spawn_at(site, name, parent_id);
}

}  // extern "C"

namespace {
__attribute__((destructor)) void crate_stop() { agent_stop(); }
}  // namespace
