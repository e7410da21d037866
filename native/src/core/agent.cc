#include "agent.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <memory>
#include <new>

#include "agent_heap.h"
#include "json.h"
#include "ledger.h"
#include "proc.h"
#include "probes.h"
#include "sampler.h"
#include "server.h"
#include "stacks.h"
#include "tasks.h"

namespace leakscope {

const char* const kAgentVersion = "0.1.0";
void* g_forwarded_malloc = nullptr;
PthreadCreateFn g_real_pthread_create = nullptr;

namespace {

struct Agent {
  AgentConfig config;
  std::unique_ptr<AllocatorProbe> probe;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<Server> server;
};

// Never destroyed: the agent's threads use it until the process is gone.
Agent* g_agent = nullptr;

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* text = getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long v = strtoull(text, &end, 10);
  return end != nullptr && *end == '\0' ? uint64_t(v) : fallback;
}

// Children started with exec must not inherit the agent unless asked:
// drop our library from LD_PRELOAD now, before the program copies environ.
void remove_self_from_ld_preload() {
  const char* current = getenv("LD_PRELOAD");
  if (current == nullptr) return;
  std::string kept;
  std::string list = current;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find_first_of(": ", start);
    if (end == std::string::npos) end = list.size();
    const std::string entry = list.substr(start, end - start);
    const size_t slash = entry.rfind('/');
    const std::string base = slash == std::string::npos ? entry : entry.substr(slash + 1);
    if (!entry.empty() && base.rfind("libleakscope", 0) != 0) {
      if (!kept.empty()) kept += ':';
      kept += entry;
    }
    start = end + 1;
  }
  if (kept.empty()) unsetenv("LD_PRELOAD"); else setenv("LD_PRELOAD", kept.c_str(), 1);
}

struct InternalStart {
  void* (*routine)(void*);
  void* arg;
};

std::atomic<int> g_agent_tids[4];

// The start of an agent thread is handed over in the agent's heap: its
// free, on the new thread, must not reach the program's allocator either
// (glibc's free gives a thread a tcache, and with it an arena).
void* new_start(const InternalStart& start) {
  void* block = g_agent_heap.allocate(sizeof(InternalStart));
  if (block == nullptr) return new InternalStart(start);
  return new (block) InternalStart(start);
}
void release_start(void* block) {
  if (g_agent_heap.owns(block)) g_agent_heap.release(block);
  else delete static_cast<InternalStart*>(block);
}

void* internal_trampoline(void* raw) {
  t_state.internal = 1;
  forward_for_good(t_state);
  // Every call of this thread takes the hooks' slow path, where an agent
  // thread's blocks come from the agent's own heap (agent_heap.h).
  t_state.bytes_until_sample = INT64_MIN / 2;
  for (auto& slot : g_agent_tids) {
    int expected = 0;
    if (slot.compare_exchange_strong(expected, current_tid())) break;
  }
  InternalStart start = *static_cast<InternalStart*>(raw);
  release_start(raw);
  return start.routine(start.arg);
}

// Runs on the sampler thread.
void* sampler_main(void*) {
  pthread_setname_np(pthread_self(), "leakscope-smpl");
  while (true) {
    g_agent->sampler->tick();
    timespec second{1, 0};
    while (nanosleep(&second, &second) != 0) {
    }
  }
  return nullptr;
}

// Runs on the server thread.
void* server_main(void*) {
  pthread_setname_np(pthread_self(), "leakscope-srv");
  g_agent->server->serve();
  return nullptr;
}

}  // namespace

bool is_agent_thread(int tid) {
  for (const auto& slot : g_agent_tids)
    if (slot.load() == tid) return true;
  return false;
}

AgentConfig config_from_env() {
  AgentConfig config;
  const char* interval = getenv("LEAKSCOPE_SAMPLE_INTERVAL");
  if (interval != nullptr && strcmp(interval, "exact") == 0) config.sample_interval = 0;
  else config.sample_interval = env_number("LEAKSCOPE_SAMPLE_INTERVAL", config.sample_interval);
  if (const char* dir = getenv("LEAKSCOPE_SOCKET_DIR")) config.socket_dir = dir;
  config.follow_children = env_number("LEAKSCOPE_FOLLOW_CHILDREN", 0) != 0;
  config.unwinder = unwinder_from_env();
  config.stack_interval = env_number("LEAKSCOPE_STACK_INTERVAL", config.stack_interval);
  config.history_seconds = uint32_t(env_number("LEAKSCOPE_HISTORY_SECONDS", config.history_seconds));
  config.max_tasks = uint32_t(std::min<uint64_t>(env_number("LEAKSCOPE_MAX_TASKS", config.max_tasks), 1u << 24));
  config.task_retain_ms = env_number("LEAKSCOPE_TASK_RETAIN_MS", config.task_retain_ms);
  config.task_retain_max = uint32_t(std::min<uint64_t>(env_number("LEAKSCOPE_TASK_RETAIN_MAX", config.task_retain_max), 1u << 24));
  return config;
}

bool start_internal_thread(void* (*routine)(void*), void* arg) {
  if (g_real_pthread_create == nullptr) return false;
  void* start = new_start(InternalStart{routine, arg});
  // The agent's threads block every signal (a new thread inherits the mask):
  // a signal sent to the process must reach one of the program's threads. A
  // program that blocks SIGUSR1 everywhere and waits for it in sigwait would
  // otherwise see it delivered to our thread, and die of its default action.
  sigset_t all, before;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &before);
  pthread_t thread;
  const int rc = g_real_pthread_create(&thread, nullptr, internal_trampoline, start);
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  if (rc != 0) {
    release_start(start);
    return false;
  }
  pthread_detach(thread);
  return true;
}

void agent_start(const AgentConfig& config, std::unique_ptr<AllocatorProbe> probe) {
  if (g_agent != nullptr) return;
  AgentWork own;  // the agent's own set-up is not the program's
  if (!config.follow_children) remove_self_from_ld_preload();
  ledger_init(config.sample_interval, config.ledger_counting ? kLedgerAll : kLedgerOff, config.counts == "sampled");
  if (!g_tasks.init(config.max_tasks, config.task_retain_ms, config.task_retain_max))
    fprintf(stderr, "leakscope: no room for the task table; tasks are not tracked\n");
  if (!probe) probe = detect_allocator(g_forwarded_malloc);
  g_stacks.init(config.unwinder, config.stack_interval);
  g_agent = new Agent{config, std::move(probe), nullptr, nullptr};
  g_agent->sampler = std::make_unique<Sampler>(*g_agent->probe, config.history_seconds);
  g_agent->server = std::make_unique<Server>(g_agent->config, *g_agent->sampler, *g_agent->probe, wall_ms());
  g_accounting.store(true);
  std::string error;
  start_internal_thread(sampler_main, nullptr);
  if (g_agent->server->listen(&error)) start_internal_thread(server_main, nullptr);
  else fprintf(stderr, "leakscope: agent not reachable, %s\n", error.c_str());
}

void agent_set_extension(const RuntimeExtension* extension) {
  if (g_agent != nullptr && g_agent->server) g_agent->server->set_extension(extension);
}

size_t agent_copy_gauges(uint64_t idle_threshold_ms, char* buffer, size_t capacity) {
  if (g_agent == nullptr) return 0;
  AgentWork own;  // what it allocates is the agent's, not the program's
  JsonWriter out;
  // Heap gauges only from a ledger that counts every free: live bytes since a
  // late attach would make "retained" hold everything from before.
  const bool counting = g_ledger.scope.load() == kLedgerAll;
  out.begin_object().field("rss_bytes", self_rss_bytes()).field("anon_bytes", self_anon_bytes()).field("counting", counting);
  // Unreclaimed bytes model mimalloc 2.0 only (src/model/allocators.ts).
  const bool delays_frees = strcmp(g_agent->probe->name(), "mimalloc") == 0 && g_agent->probe->version().rfind("2.0.", 0) == 0;
  if (counting) {
    out.field("live_bytes", Sampler::live_bytes(Sampler::ledger_totals()));
    if (delays_frees) out.field("unreclaimed_bytes", g_agent->sampler->unreclaimed_bytes());
    else out.key("unreclaimed_bytes").null();
  } else {
    out.key("live_bytes").null().key("unreclaimed_bytes").null();
  }
  std::vector<KindCount> kinds;
  g_tasks.count_by_kind(idle_threshold_ms, &kinds);
  out.key("tasks").begin_array();
  for (const KindCount& k : kinds)
    out.begin_object().field("kind", k.kind).field("live", k.live).field("idle", k.idle_over).end_object();
  out.end_array().end_object();
  const std::string& json = out.str();
  memcpy(buffer, json.data(), std::min(capacity, json.size()));
  return json.size();
}

void agent_stop() {
  if (g_agent != nullptr && g_agent->server) g_agent->server->remove_socket_file();
}

void agent_after_fork_child() {
  // The child has none of the agent's threads; it forwards and counts
  // nothing, and must not answer on the parent's socket.
  g_accounting.store(false);
  g_accounting_ended.store(true);
  forward_for_good(t_state);  // runs on the child's only thread: it counts nothing from now on
  if (g_agent != nullptr && g_agent->server) g_agent->server->close_in_child();
  for (auto& slot : g_agent_tids) slot.store(0);
}

}  // namespace leakscope
