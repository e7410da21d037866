// The agent the Node addon talks to: the one libleakscope.so carries when
// the process was started by `leakscope run` (LD_PRELOAD), or else the core
// linked into the addon, started here in "node" mode.
#pragma once

#include <cstdint>
#include <string>

#include "../core/agent.h"

namespace leakscope {

struct AgentLink {
  uint64_t (*spawn)(const char* kind, const char* name, const char* site, uint64_t parent_id, int waiting,
                    uint32_t weight_log2) = nullptr;
  void (*poll_begin)(uint64_t id) = nullptr;
  void (*poll_end)(uint64_t id) = nullptr;
  void (*complete)(uint64_t id) = nullptr;
  void (*set_extension)(const RuntimeExtension* extension) = nullptr;
  // runtime_abi.h's leakscope_runtime_gauges.
  size_t (*gauges)(uint64_t idle_threshold_ms, char* buffer, size_t capacity) = nullptr;
  bool guest = false;  // true: the preloaded agent's
  std::string mode;    // the agent's mode: "preload" as a guest, "node" otherwise
};

// Runs on the JS main thread, once. False (and `error`) when neither agent
// can be had.
bool open_agent_link(AgentLink* link, std::string* error);

// Runs on the JS main thread at environment teardown: the socket file goes
// (own agent only; a preloaded one removes its own at exit).
void close_agent_link(const AgentLink& link);

}  // namespace leakscope
