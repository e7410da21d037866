// libuv handles of one event loop, counted by type. Node exports libuv's
// symbols to addons; the few used are declared in uv_census.cc rather than
// through uv.h, which node-api-headers does not ship.
#pragma once

#include <cstdint>
#include <map>
#include <string>

struct uv_loop_s;

namespace leakscope {

struct HandleCount {
  uint32_t total = 0;
  uint32_t active = 0;
  uint32_t referenced = 0;  // active and ref'd: these keep the loop alive
};

// Runs on the loop's own thread (uv_walk is not thread-safe).
std::map<std::string, HandleCount> count_handles(uv_loop_s* loop);

}  // namespace leakscope
