// Loading a library into a running process with ptrace, on one borrowed
// thread, for as short a time as possible:
//
//   1. seize one thread at a safe point (target.h, thread_candidates) and
//      interrupt it; save its registers and extended (FPU/SSE/AVX) state;
//   2. on it, make two system calls through a `syscall` instruction of the
//      target's own: mmap a small region, mprotect its code page;
//   3. write the loader stub and its data there, and let the thread run the
//      stub's first part: pthread_create (a new thread for the rest) and
//      pthread_detach, ending on an int3;
//   4. restore every register, hand back any signal that arrived meanwhile,
//      detach: the thread goes on where it was (its system call restarts);
//   5. the new thread, a normal thread of the target's own, calls dlopen,
//      dlsym and the library's entry point, and writes the outcome into the
//      stub's data, which the injector polls until a deadline.
//
// The borrowed thread never calls the loader; a thread at a safe point
// holds no lock of the allocator, the loader or thread creation, so
// pthread_create on it cannot deadlock. Nothing is left stopped: every way
// out (an error, the deadline, a signal) restores and detaches.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "target.h"

namespace leakscope::injector {

struct InjectPlan {
  pid_t pid = 0;
  LibcFunctions libc;
  std::string library;  // the library's path as the target sees it
  std::string entry;    // the function dlsym finds and the new thread calls
  std::string options;  // its one argument
  uint64_t timeout_ms = 5000;
  std::vector<Mapping> maps;  // for the safe-point check of a running thread
};

struct InjectOutcome {
  pid_t tid = 0;              // the thread borrowed
  std::string safe_point;     // where it was: a system call's name, or "user code"
  uint64_t pause_us = 0;      // how long it was stopped
  uint64_t load_ms = 0;       // from detach to the entry point's return
  int entry_result = -1;      // what the entry point returned
  std::vector<int> signals;   // signals that arrived while it was stopped (handed back)
};

// True when the library is loaded and its entry point returned; false and
// `why` otherwise (the target keeps running either way).
// `list_candidates` lists the target's threads, best first (target.h).
bool inject_library(const InjectPlan& plan, const std::function<std::vector<Candidate>()>& list_candidates,
                    InjectOutcome* outcome, Refusal* why);

}  // namespace leakscope::injector
