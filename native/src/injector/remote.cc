#include "remote.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

// The loader stub, copied into the target. Position-independent: it reaches
// its data through %rbx (the data page's address, passed in %rdi) and the
// loader routine by a %rip-relative lea. Offsets are StubData's below.
//
// On the borrowed thread (entered by a jump, %rsp at the top of the stub's
// own stack):  pthread_create(&data->thread, NULL, loader, data);
//              pthread_detach(data->thread) when that worked; int3.
// On the new thread, loader(data): h = dlopen(path, RTLD_NOW);
//              f = dlsym(h, entry); data->entry_result = f(options);
//              data->state = 1, or on failure data->error = dlerror(),
//              data->state = 2; return NULL.
asm(R"(
  .pushsection .text
  .globl leakscope_stub_start
  .globl leakscope_stub_trap
  .globl leakscope_stub_end
  .type leakscope_stub_start, @function
leakscope_stub_start:
  mov %rdi, %rbx
  and $-16, %rsp
  lea 40(%rbx), %rdi
  xor %esi, %esi
  lea .Lleakscope_loader(%rip), %rdx
  mov %rbx, %rcx
  call *0(%rbx)
  mov %eax, 48(%rbx)
  test %eax, %eax
  jnz .Lleakscope_trap
  mov 40(%rbx), %rdi
  call *8(%rbx)
.Lleakscope_trap:
leakscope_stub_trap:
  int3
.Lleakscope_loader:
  push %rbx
  mov %rdi, %rbx
  lea 1160(%rbx), %rdi
  mov $2, %esi
  call *16(%rbx)
  test %rax, %rax
  jz .Lleakscope_failed
  mov %rax, %rdi
  lea 72(%rbx), %rsi
  call *24(%rbx)
  test %rax, %rax
  jz .Lleakscope_failed
  lea 136(%rbx), %rdi
  call *%rax
  mov %eax, 56(%rbx)
  movl $1, 52(%rbx)
  jmp .Lleakscope_done
.Lleakscope_failed:
  call *32(%rbx)
  mov %rax, 64(%rbx)
  movl $2, 52(%rbx)
.Lleakscope_done:
  xor %eax, %eax
  pop %rbx
  ret
leakscope_stub_end:
  .popsection
)");

extern "C" const unsigned char leakscope_stub_start[], leakscope_stub_trap[], leakscope_stub_end[];

namespace leakscope::injector {

namespace {

struct StubData {
  uint64_t pthread_create, pthread_detach, dlopen, dlsym, dlerror;  // 0 .. 32
  uint64_t thread;                                                  // 40
  int32_t create_result;                                            // 48
  int32_t state;                                                    // 52: 0 loading, 1 done, 2 failed
  int32_t entry_result;                                             // 56
  int32_t pad;                                                      // 60
  uint64_t error;                                                   // 64: dlerror() in the target
  char entry[64];                                                   // 72
  char options[1024];                                               // 136
  char path[2048];                                                  // 1160
};
static_assert(offsetof(StubData, thread) == 40 && offsetof(StubData, create_result) == 48 &&
                  offsetof(StubData, state) == 52 && offsetof(StubData, entry_result) == 56 &&
                  offsetof(StubData, error) == 64 && offsetof(StubData, entry) == 72 &&
                  offsetof(StubData, options) == 136 && offsetof(StubData, path) == 1160,
              "the stub's offsets");
static_assert(sizeof(StubData) <= 4096, "one page of data");

constexpr size_t kPage = 4096;
constexpr size_t kStackBytes = 64 * 1024;
constexpr size_t kRegionBytes = 2 * kPage + kStackBytes;  // code, data, stack

uint64_t now_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000 + uint64_t(ts.tv_nsec) / 1000;
}

void pause_us(long us) {
  timespec ts{0, us * 1000};
  nanosleep(&ts, nullptr);
}

// One thread of the target under ptrace, from seize to detach.
class Borrowed {
 public:
  Borrowed(pid_t pid, pid_t tid, uint64_t deadline_us) : pid_(pid), tid_(tid), deadline_us_(deadline_us) {}
  ~Borrowed() { release(); }

  // Seizes and stops the thread. False and `why` when it cannot.
  bool stop(Refusal* why) {
    if (ptrace(PTRACE_SEIZE, tid_, nullptr, nullptr) != 0) {
      *why = seize_refusal(pid_, errno);
      return false;
    }
    seized_ = true;
    if (ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0) return fail(why, "interrupt");
    if (!wait_for(Expect::kInterrupt, why, PTRACE_CONT)) return false;
    stopped_at_us_ = now_us();
    if (ptrace(PTRACE_GETREGS, tid_, nullptr, &saved_) != 0) return fail(why, "read registers");
    xstate_.resize(16384);
    iovec io{xstate_.data(), xstate_.size()};
    if (ptrace(PTRACE_GETREGSET, tid_, reinterpret_cast<void*>(NT_X86_XSTATE), &io) == 0) {
      xstate_note_ = NT_X86_XSTATE;
    } else {
      io = {xstate_.data(), xstate_.size()};
      if (ptrace(PTRACE_GETREGSET, tid_, reinterpret_cast<void*>(NT_PRFPREG), &io) != 0) return fail(why, "read FPU state");
      xstate_note_ = NT_PRFPREG;
    }
    xstate_.resize(io.iov_len);
    return true;
  }

  const user_regs_struct& saved() const { return saved_; }

  // Lets it run on for a moment (to stop it again elsewhere).
  bool run_on(Refusal* why) {
    if (ptrace(PTRACE_CONT, tid_, nullptr, nullptr) != 0) return fail(why, "resume");
    pause_us(300 + rand() % 1200);
    if (ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0) return fail(why, "interrupt");
    if (!wait_for(Expect::kInterrupt, why, PTRACE_CONT)) return false;
    stopped_at_us_ = now_us();  // the pause counts from the stop that is kept
    if (ptrace(PTRACE_GETREGS, tid_, nullptr, &saved_) != 0) return fail(why, "read registers");
    iovec io{xstate_.data(), xstate_.size()};
    if (ptrace(PTRACE_GETREGSET, tid_, reinterpret_cast<void*>(xstate_note_), &io) != 0) return fail(why, "read FPU state");
    return true;
  }

  // A system call on the thread, through the `syscall` instruction at `insn`.
  bool syscall(uintptr_t insn, long nr, const long (&args)[6], long* result, Refusal* why) {
    user_regs_struct regs = saved_;
    regs.rax = uint64_t(nr);
    regs.orig_rax = uint64_t(-1);  // no restart of the interrupted call on our way
    regs.rdi = uint64_t(args[0]);
    regs.rsi = uint64_t(args[1]);
    regs.rdx = uint64_t(args[2]);
    regs.r10 = uint64_t(args[3]);
    regs.r8 = uint64_t(args[4]);
    regs.r9 = uint64_t(args[5]);
    regs.rip = insn;
    if (!set_regs(regs, why)) return false;
    modified_ = true;
    for (;;) {
      if (ptrace(PTRACE_SINGLESTEP, tid_, nullptr, nullptr) != 0) return fail(why, "single-step");
      if (!wait_for(Expect::kTrap, why, PTRACE_SINGLESTEP)) return false;
      user_regs_struct after;
      if (ptrace(PTRACE_GETREGS, tid_, nullptr, &after) != 0) return fail(why, "read registers");
      if (after.rip == insn + 2) {
        *result = long(after.rax);
        return true;
      }
      if (after.rip != insn) return fail(why, "step past the system call");  // never: one instruction
    }
  }

  // Runs the stub from `entry` with %rdi = `arg` and its stack at `stack_top`
  // until it traps at `trap_after`.
  bool run_stub(uintptr_t entry, uintptr_t arg, uintptr_t stack_top, uintptr_t trap_after, Refusal* why) {
    user_regs_struct regs = saved_;
    regs.rip = entry;
    regs.rdi = arg;
    regs.rsp = stack_top;
    regs.orig_rax = uint64_t(-1);
    regs.eflags &= ~uint64_t(1 << 10);  // the direction flag, clear as the ABI wants at a call
    if (!set_regs(regs, why)) return false;
    modified_ = true;
    if (ptrace(PTRACE_CONT, tid_, nullptr, nullptr) != 0) return fail(why, "resume");
    for (;;) {
      if (!wait_for(Expect::kTrap, why, PTRACE_CONT)) return false;
      user_regs_struct after;
      if (ptrace(PTRACE_GETREGS, tid_, nullptr, &after) != 0) return fail(why, "read registers");
      if (after.rip == trap_after) return true;
      // A SIGTRAP of the program's own: handed back at detach.
      signals_.push_back(SIGTRAP);
      if (ptrace(PTRACE_CONT, tid_, nullptr, nullptr) != 0) return fail(why, "resume");
    }
  }

  // Every register back as it was, signals handed back, detached. Safe to
  // call more than once.
  void release() {
    if (!seized_) return;
    if (modified_) {
      ptrace(PTRACE_SETREGS, tid_, nullptr, &saved_);
      iovec io{xstate_.data(), xstate_.size()};
      ptrace(PTRACE_SETREGSET, tid_, reinterpret_cast<void*>(xstate_note_), &io);
      modified_ = false;
    }
    const int first = signals_.empty() ? 0 : signals_.front();
    ptrace(PTRACE_DETACH, tid_, nullptr, reinterpret_cast<void*>(long(first)));
    for (size_t i = 1; i < signals_.size(); ++i) syscall_tgkill(signals_[i]);
    seized_ = false;
    if (stopped_at_us_ != 0) paused_us_ = now_us() - stopped_at_us_;
  }

  uint64_t paused_us() const { return paused_us_; }
  const std::vector<int>& signals() const { return signals_; }

 private:
  enum class Expect { kInterrupt, kTrap };

  void syscall_tgkill(int sig) { ::syscall(SYS_tgkill, pid_, tid_, sig); }

  bool set_regs(const user_regs_struct& regs, Refusal* why) {
    if (ptrace(PTRACE_SETREGS, tid_, nullptr, &regs) != 0) return fail(why, "write registers");
    return true;
  }

  bool fail(Refusal* why, const char* step) {
    const int error = errno;
    if (error == ESRCH && kill(pid_, 0) != 0) {
      *why = {"exited", "pid " + std::to_string(pid_) + " exited while the agent was being loaded"};
    } else {
      *why = {"ptrace", std::string("could not ") + step + " thread " + std::to_string(tid_) + " of pid " + std::to_string(pid_) +
                            ": " + strerror(error)};
    }
    return false;
  }

  // Waits for the stop we asked for; any other stop resumes the thread the
  // way it was going (`resume`: a single step stays one step). Signals that
  // arrive meanwhile are held back and handed back at detach; a group stop
  // (SIGSTOP) on the way is waited through: the kernel stops the thread
  // again at detach, as the rest of its process is.
  bool wait_for(Expect expect, Refusal* why, __ptrace_request resume) {
    for (;;) {
      int status = 0;
      const pid_t got = waitpid(tid_, &status, __WALL | WNOHANG);
      if (got < 0) return fail(why, "wait for");
      if (got == 0) {
        if (now_us() > deadline_us_) {
          *why = {"timeout", "pid " + std::to_string(pid_) + " did not reach a point where the agent could be loaded in time; it was left running as it was"};
          // Stop it where it is, so release() can put its registers back.
          ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr);
          int ignored = 0;
          for (int i = 0; i < 1000 && waitpid(tid_, &ignored, __WALL | WNOHANG) == 0; ++i) pause_us(1000);
          return false;
        }
        pause_us(50);
        continue;
      }
      if (WIFEXITED(status) || WIFSIGNALED(status)) {
        seized_ = false;
        *why = {"exited", "pid " + std::to_string(pid_) + " (thread " + std::to_string(tid_) + ") exited while the agent was being loaded"};
        return false;
      }
      if (!WIFSTOPPED(status)) continue;
      const int sig = WSTOPSIG(status);
      const int event = status >> 16;
      if (event == PTRACE_EVENT_STOP) {
        if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
          if (expect == Expect::kInterrupt) return true;  // stopped either way
          if (ptrace(resume, tid_, nullptr, nullptr) != 0) return fail(why, "resume");
          continue;
        }
        if (expect == Expect::kInterrupt) return true;
        if (ptrace(resume, tid_, nullptr, nullptr) != 0) return fail(why, "resume");
        continue;
      }
      if (event != 0) {  // an event we did not ask for
        if (ptrace(resume, tid_, nullptr, nullptr) != 0) return fail(why, "resume");
        continue;
      }
      if (sig == SIGTRAP && expect == Expect::kTrap) return true;
      // A signal for the program: held back, handed back at detach.
      signals_.push_back(sig);
      if (ptrace(resume, tid_, nullptr, nullptr) != 0) return fail(why, "resume");
    }
  }

  pid_t pid_, tid_;
  uint64_t deadline_us_;
  bool seized_ = false, modified_ = false;
  user_regs_struct saved_{};
  std::vector<char> xstate_;
  long xstate_note_ = NT_X86_XSTATE;
  std::vector<int> signals_;
  uint64_t stopped_at_us_ = 0, paused_us_ = 0;
};

const Mapping* mapping_at(const std::vector<Mapping>& maps, uintptr_t address) {
  for (const Mapping& m : maps)
    if (address >= m.start && address < m.end) return &m;
  return nullptr;
}

// A thread stopped outside a system call is at a safe point when it runs
// code of none of the libraries that take the locks pthread_create needs
// (libc's allocator and loader, libstdc++'s operator new, an allocator
// library, the unwinder that walks the loader's lists).
bool safe_user_code(const std::vector<Mapping>& maps, uintptr_t rip) {
  const Mapping* m = mapping_at(maps, rip);
  if (m == nullptr) return false;
  if (m->path == "[vdso]") return true;
  if (m->path.empty() || m->path[0] == '[') return false;  // JIT code, the vsyscall page: unknown
  const size_t slash = m->path.rfind('/');
  const std::string base = slash == std::string::npos ? m->path : m->path.substr(slash + 1);
  for (const char* risky : {"libc.so", "libc-", "ld-linux", "libstdc++", "libgcc_s", "libpthread", "libdl", "libjemalloc",
                            "libmimalloc", "libtcmalloc", "libleakscope"})
    if (base.rfind(risky, 0) == 0) return false;
  return true;
}

bool write_memory(int mem, uintptr_t address, const void* data, size_t size) {
  return pwrite(mem, data, size, off_t(address)) == ssize_t(size);
}

std::string read_string(int mem, uintptr_t address) {
  char buffer[512] = {0};
  if (address == 0 || pread(mem, buffer, sizeof buffer - 1, off_t(address)) <= 0) return "";
  return buffer;
}

}  // namespace

bool inject_library(const InjectPlan& plan, const std::function<std::vector<Candidate>()>& list_candidates,
                    InjectOutcome* outcome, Refusal* why) {
  if (plan.library.size() >= sizeof StubData{}.path || plan.options.size() >= sizeof StubData{}.options ||
      plan.entry.size() >= sizeof StubData{}.entry) {
    *why = {"argument", "the library path or options are too long"};
    return false;
  }
  const uint64_t deadline = now_us() + plan.timeout_ms * 1000;
  const int mem = open(("/proc/" + std::to_string(plan.pid) + "/mem").c_str(), O_RDWR | O_CLOEXEC);
  if (mem < 0) {
    *why = errno == ENOENT ? Refusal{"no-process", "no process with pid " + std::to_string(plan.pid) + " (it may have exited)"}
                           : Refusal{"permission", "permission denied opening /proc/" + std::to_string(plan.pid) + "/mem: run leakscope as the process's user or as root"};
    return false;
  }
  struct CloseMem {
    int fd;
    ~CloseMem() { close(fd); }
  } close_mem{mem};

  // Find a thread at a safe point: one in an idle system call or a futex
  // wait (listed again for a few rounds: a thread is seldom out of its
  // wait for long), or else one stopped, again and again, in safe code.
  std::unique_ptr<Borrowed> thread;
  uintptr_t syscall_insn = plan.libc.syscall_insn;
  auto try_candidate = [&](const Candidate& c) -> bool {  // false: give up on the target
    auto borrowed = std::make_unique<Borrowed>(plan.pid, c.tid, deadline);
    if (!borrowed->stop(why)) return why->code == "exited" && kill(plan.pid, 0) == 0;  // that thread ended; another may do
    const int tries = c.rank == 2 ? 40 : 1;
    for (int attempt = 0; attempt < tries; ++attempt) {
      const user_regs_struct& r = borrowed->saved();
      const bool in_syscall = int64_t(r.orig_rax) >= 0;
      if (getenv("LEAKSCOPE_INJECT_DEBUG"))
        fprintf(stderr, "tid %d (%s): orig_rax %lld rax %lld rip %llx\n", c.tid, c.where.c_str(), (long long)r.orig_rax, (long long)r.rax, (unsigned long long)r.rip);
      unsigned char insn[2] = {0, 0};
      // Still in the system call it was listed in (idle, or a futex wait).
      if (in_syscall && c.rank <= 1 && pread(mem, insn, 2, off_t(r.rip - 2)) == 2 && insn[0] == 0x0f && insn[1] == 0x05) {
        outcome->safe_point = c.where;
        syscall_insn = r.rip - 2;  // the very instruction it waits in
        break;
      }
      if (!in_syscall && safe_user_code(plan.maps, r.rip)) {
        outcome->safe_point = "user code";
        break;
      }
      if (attempt + 1 == tries) {
        borrowed->release();
        return true;
      }
      if (!borrowed->run_on(why)) return false;
    }
    outcome->tid = c.tid;
    thread = std::move(borrowed);
    return true;
  };
  constexpr int kWaitingRounds = 25;  // 2 ms apart
  for (int round = 0; round <= kWaitingRounds && !thread && now_us() < deadline; ++round) {
    const bool last = round == kWaitingRounds;
    const std::vector<Candidate> listed = list_candidates();
    if (getenv("LEAKSCOPE_INJECT_DEBUG"))
      for (const Candidate& c : listed) fprintf(stderr, "round %d: %d %s rank %d\n", round, c.tid, c.where.c_str(), c.rank);
    for (const Candidate& c : listed) {
      if (thread || now_us() > deadline) break;
      if (c.rank == 2 && !last) break;  // sorted: only busy threads are left
      if (!try_candidate(c)) return false;
    }
    if (!thread && !last) pause_us(2000);
  }
  if (!thread) {
    if (why->code.empty() || why->code == "exited")
      *why = {"no-safe-point", "no thread of pid " + std::to_string(plan.pid) + " reached a safe point (an idle system call, or code outside libc and the allocator) in time; it was left running as it was: try again"};
    return false;
  }
  if (syscall_insn == 0) {
    *why = {"no-syscall", "no system call instruction found in the C library of pid " + std::to_string(plan.pid)};
    return false;
  }

  // The region: code page, data page, stack.
  long region = 0;
  if (!thread->syscall(syscall_insn, SYS_mmap, {0, long(kRegionBytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0},
                       &region, why))
    return false;
  if (region < 0 && region > -4096) {
    *why = {"mmap", std::string("mmap in pid ") + std::to_string(plan.pid) + " failed: " + strerror(int(-region))};
    return false;
  }
  const uintptr_t code = uintptr_t(region), data = code + kPage, stack_top = code + kRegionBytes - 64;
  StubData stub{};
  stub.pthread_create = plan.libc.pthread_create;
  stub.pthread_detach = plan.libc.pthread_detach;
  stub.dlopen = plan.libc.dlopen;
  stub.dlsym = plan.libc.dlsym;
  stub.dlerror = plan.libc.dlerror;
  stub.create_result = -1;
  memcpy(stub.entry, plan.entry.c_str(), plan.entry.size() + 1);
  memcpy(stub.options, plan.options.c_str(), plan.options.size() + 1);
  memcpy(stub.path, plan.library.c_str(), plan.library.size() + 1);
  const size_t code_bytes = size_t(leakscope_stub_end - leakscope_stub_start);
  if (!write_memory(mem, code, leakscope_stub_start, code_bytes) || !write_memory(mem, data, &stub, sizeof stub)) {
    *why = {"write", "could not write the loader stub into pid " + std::to_string(plan.pid) + ": " + strerror(errno)};
    return false;
  }
  long protected_rc = 0;
  if (!thread->syscall(syscall_insn, SYS_mprotect, {long(code), long(kPage), PROT_READ | PROT_EXEC, 0, 0, 0}, &protected_rc, why))
    return false;
  if (protected_rc != 0) {
    *why = {"mprotect", std::string("mprotect in pid ") + std::to_string(plan.pid) + " failed: " + strerror(int(-protected_rc))};
    return false;
  }
  const uintptr_t trap_after = code + size_t(leakscope_stub_trap - leakscope_stub_start) + 1;
  if (!thread->run_stub(code, data, stack_top, trap_after, why)) return false;
  int32_t create_result = -1;
  pread(mem, &create_result, sizeof create_result, off_t(data + offsetof(StubData, create_result)));
  thread->release();
  outcome->pause_us = thread->paused_us();
  outcome->signals = thread->signals();
  if (create_result != 0) {
    *why = {"thread", std::string("pid ") + std::to_string(plan.pid) + " could not start a thread to load the agent: " + strerror(create_result)};
    return false;
  }

  // The new thread loads the library; the target runs meanwhile.
  const uint64_t detached = now_us();
  for (;;) {
    int32_t state = 0;
    if (pread(mem, &state, sizeof state, off_t(data + offsetof(StubData, state))) != sizeof state) {
      *why = {"exited", "pid " + std::to_string(plan.pid) + " exited while the agent was being loaded"};
      return false;
    }
    if (state == 1) {
      pread(mem, &outcome->entry_result, sizeof outcome->entry_result, off_t(data + offsetof(StubData, entry_result)));
      outcome->load_ms = (now_us() - detached) / 1000;
      return true;
    }
    if (state == 2) {
      uint64_t error = 0;
      pread(mem, &error, sizeof error, off_t(data + offsetof(StubData, error)));
      const std::string text = read_string(mem, uintptr_t(error));
      *why = {"dlopen", "pid " + std::to_string(plan.pid) + " could not load " + plan.library + ": " + (text.empty() ? "dlopen failed" : text)};
      return false;
    }
    if (now_us() > deadline + 5000000) {  // loading may take a while on a busy machine: 5 s more than the stop
      *why = {"timeout", "the agent did not finish loading in pid " + std::to_string(plan.pid) + " in time (the process may be blocked in its loader); it keeps running"};
      return false;
    }
    pause_us(1000);
  }
}

}  // namespace leakscope::injector
