// Loading a library into a running process with ptrace, on one borrowed
// thread, for as short a time as possible:
//
//   1. seize one thread at a safe point (target.h, thread_candidates; the
//      checks below) and interrupt it; save its registers and extended
//      (FPU/SSE/AVX) state;
//   2. on it, make two system calls through a `syscall` instruction of the
//      target's own: mmap a small region, mprotect its code page;
//   3. write the loader stub there with its data: the functions it calls,
//      and the registers and extended state to go back to;
//   4. point the thread at the stub and detach at once: the stub calls
//      pthread_create (a new thread for the rest) and pthread_detach, then
//      puts every register back itself and jumps to where the thread was,
//      restarting the system call it was in as the kernel would. Nothing
//      depends on the injector from here: no trap, no stop to outlive;
//   5. the new thread, a normal thread of the target's own, calls dlopen,
//      dlsym and the library's entry point, and writes the outcome into the
//      stub's data, which the injector polls until a deadline.
//
// The borrowed thread never calls the loader. pthread_create takes malloc's
// locks, the thread stack cache's and the default attributes', so the
// borrowed thread must hold none of them:
//   - blocked in an idle system call (epoll_wait, nanosleep, poll, ...): no
//     code that holds one of them ever waits in such a call;
//   - waiting on a futex: only the program's own (a futex word in the C
//     library's, the loader's or an allocator library's data, or a glibc
//     arena's mutex, is a lock that thread may wait on while holding
//     another: fork takes every arena's in turn), and with none of their
//     code among its innermost frames;
//   - stopped in its own code (the last resort, when no thread waits): no
//     return address into that code anywhere on its stack.
// Every way out before the stub runs (an error, the deadline, a signal)
// puts the registers back and detaches.
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
  std::string library;  // the library's path as the target sees it; empty: deliver it in a memfd
  std::string library_bytes;  // the library itself, for a memfd
  std::string entry;    // the function dlsym finds and the new thread calls
  std::string options;  // its one argument
  uint64_t timeout_ms = 5000;
  std::vector<Mapping> maps;  // for the safe-point check of a running thread
};

struct InjectOutcome {
  std::string library;        // what the target loaded: the path, or /proc/self/fd/N of a memfd
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
