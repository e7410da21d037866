// The exported task ABI (native/include/leakscope.h): each call goes straight
// to the agent core's registry. Compiled into every module that carries the
// agent (the LD_PRELOAD library today), since symbols of the static core are
// kept local there.
#include "leakscope.h"

#include "../core/tasks.h"
#include "runtime_abi.h"

#define LEAKSCOPE_EXPORT extern "C" __attribute__((visibility("default")))

using leakscope::g_tasks;

LEAKSCOPE_EXPORT uint64_t leakscope_task_spawn(const char* kind, const char* name, const char* site, uint64_t parent_id) {
  return g_tasks.spawn(kind, name, site, parent_id);
}
LEAKSCOPE_EXPORT void leakscope_task_poll_begin(uint64_t id) { g_tasks.poll_begin(id); }
LEAKSCOPE_EXPORT void leakscope_task_poll_end(uint64_t id) { g_tasks.poll_end(id); }
LEAKSCOPE_EXPORT void leakscope_task_wake(uint64_t id) { g_tasks.wake(id); }
LEAKSCOPE_EXPORT void leakscope_task_waker_clone(uint64_t id) { g_tasks.waker_clone(id); }
LEAKSCOPE_EXPORT void leakscope_task_waker_drop(uint64_t id) { g_tasks.waker_drop(id); }
LEAKSCOPE_EXPORT void leakscope_task_complete(uint64_t id) { g_tasks.complete(id); }
LEAKSCOPE_EXPORT uint32_t leakscope_abi_version(void) { return LEAKSCOPE_ABI_VERSION; }

// native/src/abi/runtime_abi.h
LEAKSCOPE_EXPORT uint64_t leakscope_runtime_spawn(const char* kind, const char* name, const char* site, uint64_t parent_id,
                                                  int waiting, uint32_t weight_log2) {
  return g_tasks.spawn(kind, name, site, parent_id, leakscope::SpawnOptions{waiting != 0, weight_log2});
}
LEAKSCOPE_EXPORT void leakscope_runtime_extension(const leakscope::RuntimeExtension* extension) {
  leakscope::agent_set_extension(extension);
}
LEAKSCOPE_EXPORT size_t leakscope_runtime_gauges(uint64_t idle_threshold_ms, char* buffer, size_t capacity) {
  return leakscope::agent_copy_gauges(idle_threshold_ms, buffer, capacity);
}
