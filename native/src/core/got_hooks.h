// The heap ledger for a process leakscope attached to late (a Node process
// by pid, or a native one the injector loaded the agent into): no
// LD_PRELOAD, so the malloc family is hooked by rewriting the GOT entries
// through which the loaded objects call it (the executable, libstdc++,
// addons: every object but libc, the dynamic loader, the vDSO and
// leakscope's own). libc's calls to itself (strdup, fopen) are seen only
// where they go through the executable's canonical PLT entry, as they do
// in a non-PIE node that takes malloc's address.
// Allocations are counted from the moment the hooks go in; frees only of
// the sampled blocks allocated since (ledger.h, kLedgerSince), because
// blocks from before attach are freed through the same calls.
#pragma once

#include <cstddef>
#include <string>

namespace leakscope {

struct GotHookStats {
  size_t objects = 0;  // loaded objects with at least one entry rewritten
  size_t entries = 0;  // GOT entries rewritten
};

// Runs on one thread at a time (the JS main thread, or the injected agent's
// server and linger threads). Puts the hooks into every object loaded now
// (again into those loaded since the last call) and, the first time after
// being out, restarts the ledger (kLedgerSince). False and `error` when the
// allocator's functions cannot be found.
bool install_got_hooks(GotHookStats* stats, std::string* error);

// Same threads: every rewritten entry gets its old value back
// and the ledger stops counting.
void remove_got_hooks();

// The malloc the program's calls reach (past any hook), or nullptr when the
// process's allocator lacks part of the malloc family.
void* got_hooks_forwarded_malloc();

}  // namespace leakscope
