// The agent's life cycle, independent of how it got into the process (the
// LD_PRELOAD shim today; injection and the Node addon use the same calls).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <pthread.h>

#include "probes.h"
#include "stacks.h"

namespace leakscope {

struct AgentConfig {
  std::string mode = "preload";  // how the agent got in: preload | crate | node
  bool ledger_counting = true;   // false when no allocation reaches the ledger at start (a Node target attached late: hooks may go in later, ledger.h)
  uint64_t sample_interval = 65536;  // LEAKSCOPE_SAMPLE_INTERVAL; 0 = exact
  std::string counts = "exact";  // exact: every call counted; sampled: the samples' estimates (Ledger::counts_sampled)
  std::string sample_store = "table";  // where a sampled block's owner is kept: table | headers (preload/sample_header.h)
  std::string socket_dir;            // LEAKSCOPE_SOCKET_DIR or /tmp/leakscope-<uid>
  bool follow_children = false;      // LEAKSCOPE_FOLLOW_CHILDREN=1
  Unwinder unwinder = Unwinder::kDwarf;  // LEAKSCOPE_STACKS: dwarf | fp | off
  uint64_t stack_interval = kDefaultStackInterval;  // LEAKSCOPE_STACK_INTERVAL: mean bytes between stacks
  uint32_t history_seconds = 900;    // LEAKSCOPE_HISTORY_SECONDS
  uint32_t max_tasks = 1u << 20;     // LEAKSCOPE_MAX_TASKS: live and retained tasks at most
  uint64_t task_retain_ms = 60000;   // LEAKSCOPE_TASK_RETAIN_MS: completed tasks stay this long
  uint32_t task_retain_max = 65536;  // LEAKSCOPE_TASK_RETAIN_MAX: and at most this many (8 MiB)
};

extern const char* const kAgentVersion;

// Reads LEAKSCOPE_* from the environment. Runs before the agent's threads.
AgentConfig config_from_env();
// Starts accounting, the sampler thread and the server thread. `probe`
// describes the allocator when the caller knows it (the Rust crate wraps
// one); otherwise it is found from the malloc the hooks forward to.
void agent_start(const AgentConfig& config, std::unique_ptr<AllocatorProbe> probe = nullptr);
// At process exit: removes the socket file of this process.
void agent_stop();
// In a forked child: hooks forward only, inherited sockets are closed.
void agent_after_fork_child();

// A runtime inside the process (the Node bridge) that adds its own part to
// each snapshot and hears when clients come and go. Plain data: a Node
// addon may hand it to an agent that another module (the LD_PRELOAD library)
// carries.
struct RuntimeExtension {
  const char* key;  // the snapshot field it fills
  // Runs on the server thread: one JSON value into `json`. It may wait for
  // the runtime, for a bounded time.
  void (*write)(void* context, std::string* json);
  // Runs on the server thread: a client was admitted (true) or left (false).
  void (*client)(void* context, bool attached);
  void* context;
};

// Any thread: sets the runtime extension, or removes it (nullptr). Returns
// once no server call into the previous one is running.
void agent_set_extension(const RuntimeExtension* extension);

// Any thread: the figures a runtime publishes as its own metrics (the Node
// bridge through the program's OpenTelemetry meter), as one JSON object:
// {"rss_bytes", "counting", "live_bytes", "unreclaimed_bytes" (null unless
// the ledger counts every free), "tasks": [{"kind", "live", "idle"}]}, where "idle"
// counts the tasks idle for at least `idle_threshold_ms`. Written into
// `buffer` (not NUL-terminated); returns the whole length, which may exceed
// `capacity` (then call again, larger).
size_t agent_copy_gauges(uint64_t idle_threshold_ms, char* buffer, size_t capacity);

// Starts an agent-internal thread with the real pthread_create; its own
// allocations are never accounted.
bool start_internal_thread(void* (*routine)(void*), void* arg);

// True for the agent's own sampler and server threads.
bool is_agent_thread(int tid);

// Set by the way in: the real pthread_create (resolved past the hooks, or
// the C library's own for the crate).
using PthreadCreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
extern PthreadCreateFn g_real_pthread_create;
// Set by the interposition layer: the malloc its hooks forward to.
extern void* g_forwarded_malloc;

}  // namespace leakscope
