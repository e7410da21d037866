#include "remote.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <linux/memfd.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

// The loader stub, copied into the target. Position-independent: it reaches
// its data through %rbx (the data pages' address, passed in %rdi, right
// after the code page) and the loader routine by a %rip-relative lea.
// Offsets are StubData's below.
//
// On the borrowed thread, entered by the injector's last register write
// (%rsp at the top of the stub's own stack), which then detaches at once:
//   pthread_create(&data->thread, NULL, loader, data); pthread_detach when
//   that worked; data->created = 1; then it puts the thread back as it was
//   by itself: the extended state (xrstor or fxrstor), the flags, every
//   general register, the stack pointer, and a jump to where it was (back
//   onto the system call it was interrupted in, as the kernel restarts it).
//   So nothing depends on the injector once the stub runs: no trap, no
//   stop, no tracer to outlive.
// On the new thread, loader(data): h = dlopen(path, RTLD_NOW); close the
//   memfd the library came in, if it came in one; f = dlsym(h, entry);
//   data->entry_result = f(options); data->state = 1, or on failure
//   data->error = dlerror(), data->state = 2; return NULL.
asm(R"(
  .pushsection .text
  .globl leakscope_stub_start
  .globl leakscope_stub_end
  .type leakscope_stub_start, @function
leakscope_stub_start:
.Lleakscope_base:
  mov %rdi, %rbx
  and $-16, %rsp
  lea 40(%rbx), %rdi
  xor %esi, %esi
  lea .Lleakscope_loader(%rip), %rdx
  mov %rbx, %rcx
  call *0(%rbx)
  mov %eax, 48(%rbx)
  test %eax, %eax
  jnz .Lleakscope_restore
  mov 40(%rbx), %rdi
  call *8(%rbx)
.Lleakscope_restore:
  movl $1, 60(%rbx)
  mov $-1, %eax
  mov $-1, %edx
  cmpl $1, 3352(%rbx)
  jne .Lleakscope_fx
  xrstor64 4096(%rbx)
  jmp .Lleakscope_regs
.Lleakscope_fx:
  fxrstor64 4096(%rbx)
.Lleakscope_regs:
  pushq 3328(%rbx)
  popfq
  mov 3208(%rbx), %rax
  mov 3224(%rbx), %rcx
  mov 3232(%rbx), %rdx
  mov 3240(%rbx), %rsi
  mov 3248(%rbx), %rdi
  mov 3256(%rbx), %rbp
  mov 3264(%rbx), %r8
  mov 3272(%rbx), %r9
  mov 3280(%rbx), %r10
  mov 3288(%rbx), %r11
  mov 3296(%rbx), %r12
  mov 3304(%rbx), %r13
  mov 3312(%rbx), %r14
  mov 3320(%rbx), %r15
  mov 3336(%rbx), %rsp
  mov (.Lleakscope_base + 4096 + 3216)(%rip), %rbx
  jmp *(.Lleakscope_base + 4096 + 3344)(%rip)
.Lleakscope_loader:
  push %rbx
  mov %rdi, %rbx
  lea 1160(%rbx), %rdi
  mov $2, %esi
  call *16(%rbx)
  mov %rax, 3360(%rbx)
  mov 3368(%rbx), %edi
  test %edi, %edi
  js .Lleakscope_opened
  call *3376(%rbx)
.Lleakscope_opened:
  mov 3360(%rbx), %rax
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

extern "C" const unsigned char leakscope_stub_start[], leakscope_stub_end[];

namespace leakscope::injector {

namespace {

struct StubData {
  uint64_t pthread_create, pthread_detach, dlopen, dlsym, dlerror;  // 0 .. 32
  uint64_t thread;                                                  // 40
  int32_t create_result;                                            // 48
  int32_t state;                                                    // 52: 0 loading, 1 done, 2 failed
  int32_t entry_result;                                             // 56
  int32_t created;                                                  // 60: 1 once the borrowed thread is done
  uint64_t error;                                                   // 64: dlerror() in the target
  char entry[64];                                                   // 72
  char options[1024];                                               // 136
  char path[2048];                                                  // 1160
  // Where the borrowed thread goes back to: rax rbx rcx rdx rsi rdi rbp
  // r8–r15 rflags rsp rip, in the order the stub loads them.
  uint64_t resume[18];                                              // 3208
  uint32_t restore_kind;                                            // 3352: 1 xrstor, 2 fxrstor
  uint32_t pad2;                                                    // 3356
  uint64_t handle;                                                  // 3360: dlopen's
  int32_t memfd;                                                    // 3368: the library's memfd, closed after dlopen; -1 none
  int32_t pad3;                                                     // 3372
  uint64_t close;                                                   // 3376: close()
};

static_assert(offsetof(StubData, thread) == 40 && offsetof(StubData, create_result) == 48 &&
                  offsetof(StubData, state) == 52 && offsetof(StubData, entry_result) == 56 &&
                  offsetof(StubData, error) == 64 && offsetof(StubData, entry) == 72 &&
                  offsetof(StubData, options) == 136 && offsetof(StubData, path) == 1160 &&
                  offsetof(StubData, created) == 60 && offsetof(StubData, resume) == 3208 &&
                  offsetof(StubData, restore_kind) == 3352 && offsetof(StubData, handle) == 3360 &&
                  offsetof(StubData, memfd) == 3368 && offsetof(StubData, close) == 3376,
              "the stub's offsets");
static_assert(sizeof(StubData) <= 4096, "one page of data");

constexpr size_t kPage = 4096;
constexpr size_t kXsaveOffset = kPage;       // in the data: 64-byte aligned, as xrstor wants
constexpr size_t kXsaveBytes = 3 * kPage;    // room for AVX-512's state (2.7 KiB) and more
constexpr size_t kDataBytes = kXsaveOffset + kXsaveBytes;
constexpr size_t kStackBytes = 64 * 1024;
constexpr size_t kRegionBytes = kPage + kDataBytes + kStackBytes;  // code, data, stack

// Kernel-internal return values of an interrupted system call (linux/errno.h).
constexpr int64_t kRestartSys = -512, kRestartNoIntr = -513, kRestartNoHand = -514, kRestartBlock = -516;

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

  // The registers and extended state the stub puts back by itself: those
  // saved at the stop, with an interrupted system call set to run again as
  // the kernel would restart it (rip back onto the `syscall`, rax its number,
  // or restart_syscall's after a restart block).
  void fill_resume(StubData* data) const {
    const user_regs_struct& r = saved_;
    uint64_t rax = r.rax, rip = r.rip;
    if (int64_t(r.orig_rax) >= 0) {
      const int64_t result = int64_t(r.rax);
      if (result == kRestartSys || result == kRestartNoIntr || result == kRestartNoHand) {
        rax = r.orig_rax;
        rip -= 2;
      } else if (result == kRestartBlock) {
        rax = SYS_restart_syscall;
        rip -= 2;
      }
    }
    const uint64_t values[18] = {rax,    r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8,
                                 r.r9,   r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
                                 r.eflags & ~uint64_t(0x10100),  // never the trap or resume flag
                                 r.rsp, rip};
    memcpy(data->resume, values, sizeof values);
    data->restore_kind = xstate_note_ == NT_X86_XSTATE ? 1 : 2;
  }

  const std::vector<char>& xstate() const { return xstate_; }

  // Sends the thread into the stub (%rdi = `arg`, its stack at `stack_top`)
  // and lets go of it: the stub finishes and puts it back by itself.
  bool launch(uintptr_t entry, uintptr_t arg, uintptr_t stack_top, Refusal* why) {
    user_regs_struct regs = saved_;
    regs.rip = entry;
    regs.rdi = arg;
    regs.rsp = stack_top;
    regs.orig_rax = uint64_t(-1);  // no restart on the way into the stub: it restarts the call itself
    regs.eflags &= ~uint64_t(1 << 10);  // the direction flag, clear as the ABI wants at a call
    if (!set_regs(regs, why)) return false;
    modified_ = false;  // from here the stub owns the thread's way back
    const int first = signals_.empty() ? 0 : signals_.front();
    if (ptrace(PTRACE_DETACH, tid_, nullptr, reinterpret_cast<void*>(long(first))) != 0) {
      modified_ = true;
      return fail(why, "let go of");
    }
    seized_ = false;
    for (size_t i = 1; i < signals_.size(); ++i) syscall_tgkill(signals_[i]);
    paused_us_ = now_us() - stopped_at_us_;
    return true;
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
    if (stopped_at_us_ != 0 && paused_us_ == 0) paused_us_ = now_us() - stopped_at_us_;
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
  return !runtime_library(m->path);
}

// The code that may hold a lock pthread_create needs, if the thread's stack
// holds a return address into it (a word that points into such code: live
// frames, and perhaps a stale slot, which only makes the check stricter).
// "" when none does.
std::string lock_holder_on_stack(int mem, const std::vector<Mapping>& maps, const std::vector<CodeRange>& holders,
                                 uintptr_t rsp, size_t depth) {
  const Mapping* stack = mapping_at(maps, rsp);
  const uintptr_t end = std::min<uintptr_t>(stack ? stack->end : rsp + depth, rsp + depth);
  std::vector<uint64_t> words((end - (rsp & ~uintptr_t(7))) / 8);
  const ssize_t got = pread(mem, words.data(), words.size() * 8, off_t(rsp & ~uintptr_t(7)));
  if (got <= 0) return "(unreadable stack)";
  for (size_t i = 0; i < size_t(got) / 8; ++i) {
    const uint64_t w = words[i];
    auto after = std::upper_bound(holders.begin(), holders.end(), w, [](uint64_t v, const CodeRange& r) { return v < r.start; });
    if (after != holders.begin() && w < std::prev(after)->end) return std::prev(after)->name;
  }
  return "";
}

// What a futex wait at `word` waits for, when it is a lock of the C
// library, the loader or an allocator library (their data, and the
// anonymous .bss right after it), or a glibc arena's mutex (the first word
// of an arena, which the heap it heads points back to): a thread waiting
// for one may hold another (fork takes them all in turn). "" otherwise: the
// program's own mutex, condition variable or semaphore.
std::string library_lock(int mem, const std::vector<Mapping>& maps, uintptr_t word) {
  for (size_t i = 0; i < maps.size(); ++i) {
    if (word < maps[i].start || word >= maps[i].end) continue;
    const Mapping* named = &maps[i];
    if (named->path.empty() && i > 0 && maps[i - 1].end == named->start) named = &maps[i - 1];  // a library's .bss
    if (runtime_library(named->path)) return base_name(named->path);
    break;
  }
  constexpr uintptr_t kHeapMax = uintptr_t(64) << 20;  // glibc's HEAP_MAX_SIZE on 64-bit
  const uintptr_t heap = word & ~(kHeapMax - 1);
  uint64_t arena = 0;
  if (word - heap < 4096 && pread(mem, &arena, sizeof arena, off_t(heap)) == sizeof arena && arena == word) return "a glibc arena";
  return "";
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
  if (plan.library.size() + 32 >= sizeof StubData{}.path || plan.options.size() >= sizeof StubData{}.options ||
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
    if (!borrowed->stop(why)) return why->code == "exited" && !process_gone(plan.pid);  // that thread ended; another may do
    const int tries = c.rank == 2 ? 40 : 1;
    for (int attempt = 0; attempt < tries; ++attempt) {
      const user_regs_struct& r = borrowed->saved();
      const bool in_syscall = int64_t(r.orig_rax) >= 0;
      // A thread inside malloc, fork, the loader or thread creation may hold
      // a lock pthread_create takes. Blocked in an idle call it cannot be
      // (none of them waits in one while holding such a lock); in a futex
      // wait, it may: not when it waits for the program's own object, and
      // its innermost frames are none of theirs; stopped in its own code,
      // when no frame of its stack is theirs (stale slots make this strict).
      // Judged by where it stopped, not where it was listed: it may have
      // moved on since (the listing is a hint). A test knob may rank every
      // system call as busy (LEAKSCOPE_INJECT_PREFER=busy, target.cc).
      std::string where;
      const int rank = !in_syscall ? 2 : c.rank == 2 ? 2 : syscall_rank(plan.pid, long(r.orig_rax), long(r.rdi), &where);
      std::string holder;
      if (in_syscall && rank == 1) {
        holder = library_lock(mem, plan.maps, r.rdi);
        if (holder.empty()) holder = lock_holder_on_stack(mem, plan.maps, plan.libc.lock_holders, r.rsp, 1024);
      } else if (!in_syscall) {
        holder = lock_holder_on_stack(mem, plan.maps, plan.libc.lock_holders, r.rsp, 64 * 1024);
      }
      if (getenv("LEAKSCOPE_INJECT_DEBUG"))
        fprintf(stderr, "tid %d (%s): orig_rax %lld rax %lld rip %llx%s%s\n", c.tid, where.empty() ? c.where.c_str() : where.c_str(),
                (long long)r.orig_rax, (long long)r.rax, (unsigned long long)r.rip, holder.empty() ? "" : ", within ", holder.c_str());
      unsigned char insn[2] = {0, 0};
      // In an idle system call, or the program's own futex wait.
      if (in_syscall && rank <= 1 && holder.empty() && pread(mem, insn, 2, off_t(r.rip - 2)) == 2 && insn[0] == 0x0f &&
          insn[1] == 0x05) {
        outcome->safe_point = where;
        syscall_insn = r.rip - 2;  // the very instruction it waits in
        break;
      }
      if (!in_syscall && holder.empty() && safe_user_code(plan.maps, r.rip)) {
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
  // Rounds 2 ms apart until the deadline; every 26th also tries the busy
  // threads (stopped again and again until one is in safe code). On a loaded
  // machine every thread may be busy in libc for the first rounds: the
  // deadline, not a count of rounds, ends the search.
  constexpr int kWaitingRounds = 25;
  for (int round = 0; !thread && now_us() < deadline && !process_gone(plan.pid); ++round) {
    const bool last = round % (kWaitingRounds + 1) == kWaitingRounds;
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
  if (!thread && process_gone(plan.pid)) {
    *why = {"exited", "pid " + std::to_string(plan.pid) + " exited while the agent was being loaded"};
    return false;
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
  // A target whose files we cannot write to (another mount namespace with a
  // read-only or missing /tmp) gets the library in a memfd of its own: the
  // borrowed thread makes it, we fill it through /proc/PID/fd.
  int32_t memfd = -1;
  std::string library = plan.library;
  if (library.empty()) {
    static const char kName[] = "leakscope-agent";
    long fd = -1;
    if (!write_memory(mem, data, kName, sizeof kName) ||
        !thread->syscall(syscall_insn, SYS_memfd_create, {long(data), long(MFD_CLOEXEC), 0, 0, 0, 0}, &fd, why))
      return why->code.empty() ? (*why = {"memfd", "could not make a memfd in pid " + std::to_string(plan.pid)}, false) : false;
    if (fd < 0) {
      *why = {"memfd", std::string("memfd_create in pid ") + std::to_string(plan.pid) + " failed: " + strerror(int(-fd))};
      return false;
    }
    memfd = int32_t(fd);
    const std::string at = "/proc/" + std::to_string(plan.pid) + "/fd/" + std::to_string(fd);
    const int out = open(at.c_str(), O_WRONLY | O_CLOEXEC);
    const bool written = out >= 0 && write(out, plan.library_bytes.data(), plan.library_bytes.size()) == ssize_t(plan.library_bytes.size());
    if (out >= 0) close(out);
    if (!written) {
      *why = {"memfd", "could not fill the memfd in pid " + std::to_string(plan.pid) + ": " + strerror(errno)};
      return false;
    }
    library = "/proc/self/fd/" + std::to_string(fd);
  }
  outcome->library = library;
  if (thread->xstate().size() > kXsaveBytes) {
    *why = {"xstate", "the extended register state of pid " + std::to_string(plan.pid) + " is larger than leakscope's stub holds (" +
                          std::to_string(thread->xstate().size()) + " bytes)"};
    return false;
  }
  StubData stub{};
  stub.pthread_create = plan.libc.pthread_create;
  stub.pthread_detach = plan.libc.pthread_detach;
  stub.dlopen = plan.libc.dlopen;
  stub.dlsym = plan.libc.dlsym;
  stub.dlerror = plan.libc.dlerror;
  stub.create_result = -1;
  memcpy(stub.entry, plan.entry.c_str(), plan.entry.size() + 1);
  memcpy(stub.options, plan.options.c_str(), plan.options.size() + 1);
  memcpy(stub.path, library.c_str(), library.size() + 1);
  stub.memfd = memfd;
  stub.close = plan.libc.close;
  thread->fill_resume(&stub);
  const size_t code_bytes = size_t(leakscope_stub_end - leakscope_stub_start);
  if (!write_memory(mem, code, leakscope_stub_start, code_bytes) || !write_memory(mem, data, &stub, sizeof stub) ||
      !write_memory(mem, data + kXsaveOffset, thread->xstate().data(), thread->xstate().size())) {
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
  if (!thread->launch(code, data, stack_top, why)) return false;
  outcome->pause_us = thread->paused_us();
  outcome->signals = thread->signals();

  // The borrowed thread starts the loader thread and goes back by itself.
  int32_t created = 0, create_result = -1;
  while (created == 0) {
    if (pread(mem, &created, sizeof created, off_t(data + offsetof(StubData, created))) != sizeof created) {
      *why = {"exited", "pid " + std::to_string(plan.pid) + " exited while the agent was being loaded"};
      return false;
    }
    if (created == 0 && now_us() > deadline + 5000000) {
      *why = {"timeout", "pid " + std::to_string(plan.pid) + " did not start the thread that loads the agent in time; it keeps running"};
      return false;
    }
    if (created == 0) pause_us(200);
  }
  pread(mem, &create_result, sizeof create_result, off_t(data + offsetof(StubData, create_result)));
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
      *why = {"dlopen", "pid " + std::to_string(plan.pid) + " could not load " + library + ": " + (text.empty() ? "dlopen failed" : text)};
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
