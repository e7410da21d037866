// libuv handles of one event loop, counted by type. Node exports libuv's
// symbols to addons; the few used are declared in uv_census.cc rather than
// through uv.h, which node-api-headers does not ship.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

struct uv_loop_s;

namespace leakscope {

struct HandleCount {
  uint32_t total = 0;
  uint32_t active = 0;
  uint32_t referenced = 0;  // active and ref'd: these keep the loop alive
};

// Runs on the loop's own thread (uv_walk is not thread-safe).
std::map<std::string, HandleCount> count_handles(uv_loop_s* loop);

// Runs on the loop's own thread: the tids of libuv's threadpool, found by
// queueing `threads` work items that each note their thread and wait for the
// others (until `timeout_ms` from now), so that each lands on a thread of its
// own. Blocks the caller and any pool thread for at most `timeout_ms`; a pool
// thread busy with long work all that time is not found. Starts the pool if
// nothing has used it yet.
std::vector<int> threadpool_tids(uv_loop_s* loop, int threads, int timeout_ms);

}  // namespace leakscope
