// What the Node addon needs of an agent beyond the public task ABI: spawns
// that start waiting and stand for several tasks, and a place for its part
// of the snapshot. Internal: libleakscope.so exports it so that an addon
// loaded into a process started by `leakscope run` uses the agent that is
// there already instead of starting a second one. Not a stable interface.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../core/agent.h"

extern "C" {
uint64_t leakscope_runtime_spawn(const char* kind, const char* name, const char* site, uint64_t parent_id, int waiting,
                                 uint32_t weight_log2);
void leakscope_runtime_extension(const leakscope::RuntimeExtension* extension);
// leakscope::agent_copy_gauges.
size_t leakscope_runtime_gauges(uint64_t idle_threshold_ms, char* buffer, size_t capacity);
}
