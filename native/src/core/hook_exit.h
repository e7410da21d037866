// The end of an accounted call in a set of malloc hooks (the LD_PRELOAD
// shim's, the Node addon's GOT hooks): each enters on its own terms, and
// leaves the same way.
#pragma once

#include "ledger.h"
#include "real_allocator.h"

namespace leakscope {

inline void leave(ThreadState& ts) { ts.busy = 0; }

// Hot path: `block` (if the allocator gave one) is this thread's now.
inline void* account_alloc(ThreadState& ts, const RealAllocator& real, void* block) {
  if (block != nullptr) on_alloc(ts, block, real.usable_size(block));
  leave(ts);
  return block;
}

}  // namespace leakscope
