// What the injector learns about a target before it touches it: whether it
// may be traced at all (and if not, why, in words a person can act on),
// where its C library is and the addresses of the functions the loader stub
// calls, and which of its threads is at a safe point to borrow.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace leakscope::injector {

// A refusal: `code` names the cause for programs, `message` says it to a
// person (one line, with what would fix it).
struct Refusal {
  std::string code;
  std::string message;
};

struct Mapping {
  uintptr_t start = 0, end = 0, offset = 0;
  std::string perms, path;
};

std::vector<Mapping> read_maps(pid_t pid);

// Checks that need no ptrace: the process exists and runs, is 64-bit x86,
// dynamically linked against glibc, traced by nobody, and this machine's
// ptrace policy lets us trace it. False and `why` otherwise.
bool preflight(pid_t pid, Refusal* why);

// The reason PTRACE_SEIZE failed with `error`, in the same words.
Refusal seize_refusal(pid_t pid, int error);

// The functions of the target's C library that the loader stub calls, at
// their addresses in the target.
// Code that may run with a lock held that pthread_create needs (malloc's,
// the loader's, the thread stack cache's): a return address into it on a
// thread's stack means the thread may hold one.
struct CodeRange {
  uintptr_t start = 0, end = 0;
  std::string name;
};

struct LibcFunctions {
  uintptr_t dlopen = 0, dlsym = 0, dlerror = 0, pthread_create = 0, pthread_detach = 0, close = 0;
  uintptr_t syscall_insn = 0;  // a `syscall` instruction in libc's text
  std::string path;            // libc as the target names it
  std::vector<CodeRange> lock_holders;  // sorted by start
};

bool find_libc_functions(pid_t pid, const std::vector<Mapping>& maps, LibcFunctions* out, Refusal* why);

// Where the library is already mapped in the target (empty: not loaded).
std::string loaded_library(const std::vector<Mapping>& maps, const std::string& base_name);

// A thread to borrow, best first: blocked in a system call that no lock of
// the loader, the allocator or thread creation is held across (epoll_wait,
// nanosleep, poll, accept, a read of a socket or pipe, ...); then waiting on
// a futex; then the rest (stopped and checked one by one, see remote.h).
struct Candidate {
  pid_t tid = 0;
  int rank = 0;        // 0 safe syscall, 1 futex, 2 anything else
  std::string where;   // "epoll_wait", "futex", "running"
};

std::vector<Candidate> thread_candidates(pid_t pid);

// How a thread blocked in system call `nr` (first argument `arg0`) ranks, as
// in Candidate: 0 idle, 1 a futex wait, 2 any other; `name` says which.
int syscall_rank(pid_t pid, long nr, long arg0, std::string* name);

// The allocator the executable carries itself ("#[global_allocator]" for a
// Rust one, "malloc", "mi_malloc", "je_malloc", ... for one linked in
// statically), or "" when it calls a shared library's malloc through its GOT.
std::string linked_allocator(pid_t pid);

// The process has exited (gone, or a zombie waiting for its parent).
bool process_gone(pid_t pid);

// The process's mount namespace differs from ours (a container, unshare -m).
bool other_mount_namespace(pid_t pid);

// The file name at the end of a path.
std::string base_name(const std::string& path);

// A library of the runtime beneath the program, whose code and data may take
// or hold the locks pthread_create needs: the C library and loader,
// libstdc++ and libgcc (operator new, the unwinder), an allocator library,
// and leakscope's own.
bool runtime_library(const std::string& path);

// Reads a whole small file; false when it cannot.
bool read_file(const std::string& path, std::string* out);

}  // namespace leakscope::injector
