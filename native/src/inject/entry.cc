// libleakscope-inject.so: the agent as the injector loads it into a running
// native process (native/src/injector). No LD_PRELOAD: the malloc family is
// hooked through the GOT of every loaded object (core/got_hooks.h) while a
// client is attached and for `linger_ms` after the last one leaves; then the
// hooks come out and the agent stays, dormant, listening for the next client.
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "../core/agent.h"
#include "../core/got_hooks.h"
#include "../core/json.h"
#include "../core/ledger.h"

namespace leakscope {

namespace {

// What the injector passes: "key=value;key=value".
struct InjectOptions {
  std::string socket_dir;
  uint64_t linger_ms = 30000;
  std::string linked_allocator;  // the executable's own allocator function (injector/target.h), if any
};

InjectOptions parse_options(const char* text) {
  InjectOptions options;
  std::string rest = text ? text : "";
  size_t start = 0;
  while (start < rest.size()) {
    size_t end = rest.find(';', start);
    if (end == std::string::npos) end = rest.size();
    const std::string item = rest.substr(start, end - start);
    const size_t eq = item.find('=');
    if (eq != std::string::npos) {
      const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
      if (key == "socket_dir") options.socket_dir = value;
      else if (key == "linger_ms") options.linger_ms = strtoull(value.c_str(), nullptr, 10);
      else if (key == "linked_allocator") options.linked_allocator = value;
    }
    start = end + 1;
  }
  return options;
}

// The hooks' state, guarded by g_lock; the linger thread waits on g_wake.
std::mutex g_lock;
std::condition_variable g_wake;
pid_t g_started_in = 0;  // the pid the agent was started in (0: never)
uint64_t g_linger_ms = 30000;
int g_clients = 0;
uint64_t g_last_left_ms = 0;
bool g_hooks_in = false;
GotHookStats g_stats;
std::string g_hook_error;
std::string g_linked_allocator;

// Holds g_lock. Puts the hooks in, or into objects loaded since.
void hooks_in_locked() {
  std::string error;
  GotHookStats stats;
  if (install_got_hooks(&stats, &error)) {
    g_hooks_in = true;
    g_stats = stats;
    g_hook_error.clear();
  } else {
    g_hook_error = error;
  }
}

void hooks_out_locked() {
  if (!g_hooks_in) return;
  remove_got_hooks();
  g_hooks_in = false;
}

void write_state(void*, std::string* json) {
  std::lock_guard<std::mutex> hold(g_lock);
  JsonWriter out;
  out.begin_object()
      .field("hooks_in", g_hooks_in)
      .field("objects", uint64_t(g_stats.objects))
      .field("entries", uint64_t(g_stats.entries))
      .field("linger_ms", g_linger_ms);
  if (g_hook_error.empty()) out.key("hook_error").null();
  else out.field("hook_error", g_hook_error);
  if (g_linked_allocator.empty()) out.key("linked_allocator").null();
  else out.field("linked_allocator", g_linked_allocator);
  out.end_object();
  *json = out.str();
}

// Runs on the server thread.
void client_changed(void*, bool attached) {
  std::lock_guard<std::mutex> hold(g_lock);
  if (attached) {
    ++g_clients;
    hooks_in_locked();
  } else if (g_clients > 0) {
    --g_clients;
    g_last_left_ms = wall_ms();
  }
  g_wake.notify_all();
}

const RuntimeExtension kExtension{"inject", write_state, client_changed, nullptr};

// The linger thread: takes the hooks out once the last client has been gone
// for linger_ms, and while they are in, hooks objects loaded since (dlopen)
// within a second.
void* linger_main(void*) {
  pthread_setname_np(pthread_self(), "leakscope-lngr");
  std::unique_lock<std::mutex> hold(g_lock);
  while (true) {
    g_wake.wait_for(hold, std::chrono::seconds(1));
    if (!g_hooks_in) continue;
    if (g_clients == 0 && wall_ms() - g_last_left_ms >= g_linger_ms) hooks_out_locked();
    else hooks_in_locked();
  }
  return nullptr;
}

void after_fork_in_child() {
  agent_after_fork_child();
  // The child's copy of the hooks forwards (agent_after_fork_child); it has
  // no agent of its own.
}

}  // namespace

}  // namespace leakscope

using namespace leakscope;

// Called by the injector's loader thread after dlopen, again on every later
// injection into the same process. 0: the agent runs (started now or
// before); 1: the process's allocator lacks part of the malloc family (the
// agent runs without hooks); 2: this process is a forked child of one the
// agent was loaded into, where it cannot run.
extern "C" __attribute__((visibility("default"))) int leakscope_inject_attach(const char* options_text) {
  AgentWork own;
  const InjectOptions options = parse_options(options_text);
  {
    std::lock_guard<std::mutex> hold(g_lock);
    if (g_started_in != 0 && g_started_in != getpid()) return 2;
    g_linger_ms = options.linger_ms;
    g_linked_allocator = options.linked_allocator;
    if (g_started_in != 0) {
      // A dormant agent (its socket gone?): nothing to restart; the hooks go
      // back in with the next client.
      return 0;
    }
    g_started_in = getpid();
  }
  AgentConfig config = config_from_env();
  config.mode = "inject";
  config.ledger_counting = false;  // counting starts when the hooks go in (kLedgerSince)
  // The samples alone are counted (estimates for the rest), so that a hooked
  // call costs its countdown and little more (docs/benchmarks.md).
  config.counts = "sampled";
  if (!options.socket_dir.empty()) config.socket_dir = options.socket_dir;
  g_real_pthread_create = &pthread_create;
  g_forwarded_malloc = got_hooks_forwarded_malloc();
  pthread_atfork(nullptr, nullptr, after_fork_in_child);
  agent_start(config);
  agent_set_extension(&kExtension);
  {
    std::lock_guard<std::mutex> hold(g_lock);
    // The client that asked for the agent connects next: hooks in now, so it
    // sees counting from the start of its session.
    hooks_in_locked();
    g_last_left_ms = wall_ms();
  }
  start_internal_thread(linger_main, nullptr);
  return g_forwarded_malloc == nullptr ? 1 : 0;
}

// At exit of a process the agent was started in: its socket file goes.
__attribute__((destructor)) static void inject_stop() {
  if (g_started_in == getpid()) agent_stop();
}
