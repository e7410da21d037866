#include "agent_link.h"

#include <dlfcn.h>
#include <pthread.h>

#include "../abi/runtime_abi.h"
#include "../core/tasks.h"
#include "leakscope.h"

namespace leakscope {

namespace {

template <typename Fn>
bool resolve(const char* name, Fn* to) {
  *to = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
  return *to != nullptr;
}

uint64_t own_spawn(const char* kind, const char* name, const char* site, uint64_t parent_id, int waiting,
                   uint32_t weight_log2) {
  return g_tasks.spawn(kind, name, site, parent_id, SpawnOptions{waiting != 0, weight_log2});
}
void own_poll_begin(uint64_t id) { g_tasks.poll_begin(id); }
void own_poll_end(uint64_t id) { g_tasks.poll_end(id); }
void own_complete(uint64_t id) { g_tasks.complete(id); }

}  // namespace

bool open_agent_link(AgentLink* link, std::string* error) {
  // Node loads addons RTLD_LOCAL, so these resolve only to a preloaded
  // libleakscope.so, never to this module's own copies.
  AgentLink guest;
  if (resolve("leakscope_runtime_spawn", &guest.spawn) && resolve("leakscope_task_poll_begin", &guest.poll_begin) &&
      resolve("leakscope_task_poll_end", &guest.poll_end) && resolve("leakscope_task_complete", &guest.complete) &&
      resolve("leakscope_runtime_extension", &guest.set_extension) &&
      resolve("leakscope_runtime_gauges", &guest.gauges)) {
    guest.guest = true;
    guest.mode = "preload";
    *link = guest;
    return true;
  }
  AgentConfig config = config_from_env();
  config.mode = "node";
  // Attached late: no allocation hook, so the per-thread ledger stays empty
  // and the snapshot says so.
  config.ledger_counting = false;
  g_real_pthread_create = &pthread_create;
  g_forwarded_malloc = dlsym(RTLD_DEFAULT, "malloc");
  agent_start(config);
  if (!g_tasks.ready()) {
    *error = "the agent could not map its task table";
    return false;
  }
  link->spawn = own_spawn;
  link->poll_begin = own_poll_begin;
  link->poll_end = own_poll_end;
  link->complete = own_complete;
  link->set_extension = agent_set_extension;
  link->gauges = agent_copy_gauges;
  link->guest = false;
  link->mode = "node";
  return true;
}

void close_agent_link(const AgentLink& link) {
  if (!link.guest) agent_stop();
}

}  // namespace leakscope
