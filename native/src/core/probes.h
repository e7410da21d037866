// Allocator probes: which allocator serves malloc, its own statistics, and
// the call that gives retained memory back. The agent reports numbers as the
// allocator states them; judging them is the CLI's job.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "json.h"

namespace leakscope {

class AllocatorProbe {
 public:
  virtual ~AllocatorProbe() = default;
  virtual const char* name() const = 0;
  virtual std::string version() const = 0;
  // Runs on the server thread: writes the allocator's own statistics as
  // fields of the open "allocator" object.
  virtual void write_stats(JsonWriter& out) = 0;
  // Runs on the sampler thread once a second.
  virtual void tick(uint64_t /*now_ms*/) {}
  // What reclaim() calls, as a user would write it.
  virtual const char* reclaim_action() const = 0;
  // Runs on the server thread. False when the allocator offers no such call.
  virtual bool reclaim() = 0;
};

// `forwarded_malloc` is the malloc the hooks forward to; the object that
// defines it is the allocator in charge.
std::unique_ptr<AllocatorProbe> detect_allocator(void* forwarded_malloc);

// mimalloc's calls the probe uses. A statically linked mimalloc (a Rust
// #[global_allocator]) exports no symbols to look up: its linker passes them.
struct MimallocCalls {
  int (*version)();
  void (*process_info)(size_t*, size_t*, size_t*, size_t*, size_t*, size_t*, size_t*, size_t*);
  void (*collect)(bool);
};
// jemalloc's mallctl, however it is named in the program (tikv-jemalloc's is
// _rjem_mallctl).
using Mallctl = int (*)(const char*, void*, size_t*, void*, size_t);

std::unique_ptr<AllocatorProbe> make_glibc_probe();
// Without calls: looked up by their usual names in the process.
std::unique_ptr<AllocatorProbe> make_jemalloc_probe(Mallctl mallctl = nullptr);
std::unique_ptr<AllocatorProbe> make_mimalloc_probe(const MimallocCalls* calls = nullptr);
std::unique_ptr<AllocatorProbe> make_unknown_probe(const std::string& name, const std::string& object);

}  // namespace leakscope
