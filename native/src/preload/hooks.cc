// LD_PRELOAD interposition: a table of hooks over the malloc family and
// pthread_create that forwards to the next allocator (glibc, or a preloaded
// or linked jemalloc / mimalloc) and reports into the agent core. The core
// knows nothing about how it was hooked.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>

#include "../core/agent.h"
#include "../core/ledger.h"
#include "../core/hook_exit.h"
#include "../core/real_allocator.h"

using namespace leakscope;

namespace {

RealAllocator real;

std::atomic<int> resolve_state{0};  // 0 not yet, 1 resolving, 2 resolved

// dlsym itself allocates (its error buffer, via calloc); while we resolve,
// such calls are served from this static arena and never freed.
// https://sourceware.org/bugzilla/show_bug.cgi?id=19152
alignas(16) char bootstrap_arena[64 * 1024];
std::atomic<size_t> bootstrap_used{0};

bool in_bootstrap(const void* p) {
  return p >= bootstrap_arena && p < bootstrap_arena + sizeof bootstrap_arena;
}

void* bootstrap_alloc(size_t size) {
  const size_t need = ((size + 15) & ~size_t(15)) + 16;
  const size_t at = bootstrap_used.fetch_add(need);
  if (at + need > sizeof bootstrap_arena) return nullptr;
  *reinterpret_cast<size_t*>(bootstrap_arena + at) = size;
  return bootstrap_arena + at + 16;  // zeroed: the arena is static
}

size_t bootstrap_size(const void* p) { return *reinterpret_cast<const size_t*>(static_cast<const char*>(p) - 16); }

template <typename F>
void resolve(F& slot, const char* name) {
  slot = reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

size_t page_size() {
  static size_t page = size_t(sysconf(_SC_PAGESIZE));
  return page;
}

// The memalign family through posix_memalign, for allocators that leave
// some of it out (Debian's jemalloc has no pvalloc): the next definition
// would then be glibc's, and its blocks would reach the other allocator's
// free. The program dies of that even without leakscope; under it, it
// does not.
void* via_posix_memalign(size_t alignment, size_t size) {
  size_t aligned = sizeof(void*);
  while (aligned < alignment) aligned <<= 1;
  void* block = nullptr;
  return real.posix_memalign(&block, aligned, size) == 0 ? block : nullptr;
}
void* fallback_aligned_alloc(size_t alignment, size_t size) { return via_posix_memalign(alignment, size); }
void* fallback_memalign(size_t alignment, size_t size) { return via_posix_memalign(alignment, size); }
void* fallback_valloc(size_t size) { return via_posix_memalign(page_size(), size); }
void* fallback_pvalloc(size_t size) {
  const size_t page = page_size();
  return via_posix_memalign(page, size == 0 ? page : (size + page - 1) & ~(page - 1));
}

bool same_object(void* a, void* b) {
  Dl_info ia{}, ib{};
  return a != nullptr && b != nullptr && dladdr(a, &ia) != 0 && dladdr(b, &ib) != 0 && ia.dli_fbase == ib.dli_fbase;
}

template <typename F>
void keep_if_same_allocator(F& slot, F fallback, void* allocator_malloc) {
  if (!same_object(reinterpret_cast<void*>(slot), allocator_malloc)) slot = fallback;
}

void resolve_real() {
  int expected = 0;
  if (!resolve_state.compare_exchange_strong(expected, 1)) {
    while (resolve_state.load() != 2) {
    }
    return;
  }
  RealAllocator r{};
  resolve(r.malloc, "malloc");
  resolve(r.free, "free");
  resolve(r.calloc, "calloc");
  resolve(r.realloc, "realloc");
  resolve(r.posix_memalign, "posix_memalign");
  resolve(r.aligned_alloc, "aligned_alloc");
  resolve(r.memalign, "memalign");
  resolve(r.valloc, "valloc");
  resolve(r.pvalloc, "pvalloc");
  resolve(r.malloc_usable_size, "malloc_usable_size");
  resolve(g_real_pthread_create, "pthread_create");
  if (r.posix_memalign != nullptr && same_object(reinterpret_cast<void*>(r.posix_memalign), reinterpret_cast<void*>(r.malloc))) {
    void* allocator = reinterpret_cast<void*>(r.malloc);
    keep_if_same_allocator(r.aligned_alloc, fallback_aligned_alloc, allocator);
    keep_if_same_allocator(r.memalign, fallback_memalign, allocator);
    keep_if_same_allocator(r.valloc, fallback_valloc, allocator);
    keep_if_same_allocator(r.pvalloc, fallback_pvalloc, allocator);
  }
  r.glibc_chunks = forwarding_to_glibc(reinterpret_cast<void*>(r.malloc));
  real = r;
  g_forwarded_malloc = reinterpret_cast<void*>(r.malloc);
  resolve_state.store(2);
}

inline bool resolving() {
  if (__builtin_expect(resolve_state.load(std::memory_order_acquire) == 2, 1)) return false;
  if (resolve_state.load() == 0) resolve_real();
  return resolve_state.load() != 2;  // we are inside dlsym: use the arena
}

// Entering a hook: true when this call is to be accounted. The guard keeps
// the agent's own allocations (and the allocator's calls into itself) out.
inline bool enter(ThreadState& ts) {
  if (ts.busy || !g_accounting.load(std::memory_order_relaxed)) return false;
  ts.busy = 1;
  return true;
}
inline void* account_alloc(ThreadState& ts, void* block) { return leakscope::account_alloc(ts, real, block); }

pthread_key_t exit_key;
std::atomic<bool> exit_key_ready{false};

// Runs on a thread as it exits, after its own TLS destructors.
void on_thread_exit(void*) { mark_thread_exited(t_state); }

void register_thread_exit(ThreadState& ts) {
  if (exit_key_ready.load(std::memory_order_acquire)) pthread_setspecific(exit_key, &ts);
}

struct StartRequest {
  void* (*routine)(void*);
  void* arg;
  int32_t creator_tid;
};

// First code of every thread created through pthread_create.
void* thread_trampoline(void* raw) {
  StartRequest request = *static_cast<StartRequest*>(raw);
  ThreadState& ts = t_state;
  ts.busy = 1;
  real.free(raw);
  if (g_accounting.load(std::memory_order_relaxed)) {
    claim_slot(ts, uintptr_t(request.routine), request.creator_tid);
    register_thread_exit(ts);
  }
  ts.busy = 0;
  return request.routine(request.arg);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* malloc(size_t size) {
  if (resolving()) return bootstrap_alloc(size);
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.malloc(size);
  return account_alloc(ts, real.malloc(size));
}

__attribute__((visibility("default"))) void free(void* block) {
  if (block == nullptr || in_bootstrap(block)) return;
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.free(block);
  on_free(ts, block, real.usable_size(block));
  real.free(block);
  leave(ts);
}

__attribute__((visibility("default"))) void* calloc(size_t count, size_t size) {
  if (resolving()) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) return nullptr;
    return bootstrap_alloc(total);
  }
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.calloc(count, size);
  return account_alloc(ts, real.calloc(count, size));
}

__attribute__((visibility("default"))) void* realloc(void* block, size_t size) {
  if (block != nullptr && in_bootstrap(block)) {
    void* moved = malloc(size);
    if (moved != nullptr) memcpy(moved, block, bootstrap_size(block) < size ? bootstrap_size(block) : size);
    return moved;
  }
  if (resolving()) return bootstrap_alloc(size);
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.realloc(block, size);
  if (block == nullptr) return account_alloc(ts, real.realloc(nullptr, size));
  // The old block leaves the ownership table before the allocator may hand
  // its address to another thread.
  const size_t old_usable = real.usable_size(block);
  on_free(ts, block, old_usable);
  void* moved = real.realloc(block, size);
  if (moved == nullptr && size != 0) {
    on_alloc(ts, block, old_usable);  // failed: the old block is still live
    leave(ts);
    return nullptr;
  }
  return account_alloc(ts, moved);
}

__attribute__((visibility("default"))) void* reallocarray(void* block, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(block, total);
}

__attribute__((visibility("default"))) int posix_memalign(void** out, size_t alignment, size_t size) {
  if (resolving()) return ENOMEM;
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.posix_memalign(out, alignment, size);
  const int rc = real.posix_memalign(out, alignment, size);
  account_alloc(ts, rc == 0 ? *out : nullptr);
  return rc;
}

__attribute__((visibility("default"))) void* aligned_alloc(size_t alignment, size_t size) {
  if (resolving()) return nullptr;
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.aligned_alloc(alignment, size);
  return account_alloc(ts, real.aligned_alloc(alignment, size));
}

__attribute__((visibility("default"))) void* memalign(size_t alignment, size_t size) {
  if (resolving()) return nullptr;
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.memalign(alignment, size);
  return account_alloc(ts, real.memalign(alignment, size));
}

__attribute__((visibility("default"))) void* valloc(size_t size) {
  if (resolving()) return nullptr;
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.valloc(size);
  return account_alloc(ts, real.valloc(size));
}

__attribute__((visibility("default"))) void* pvalloc(size_t size) {
  if (resolving()) return nullptr;
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.pvalloc(size);
  return account_alloc(ts, real.pvalloc(size));
}

__attribute__((visibility("default"))) size_t malloc_usable_size(void* block) {
  if (block == nullptr) return 0;
  if (in_bootstrap(block)) return bootstrap_size(block);
  if (resolving()) return 0;
  return real.malloc_usable_size(block);  // the program's own call: the allocator answers
}

__attribute__((visibility("default"))) int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                                                          void* (*routine)(void*), void* arg) {
  if (resolve_state.load() != 2) resolve_real();
  ThreadState& ts = t_state;
  if (ts.internal || !g_accounting.load(std::memory_order_relaxed))
    return g_real_pthread_create(thread, attr, routine, arg);
  ts.busy++;
  auto* request = static_cast<StartRequest*>(real.malloc(sizeof(StartRequest)));
  ts.busy--;
  if (request == nullptr) return g_real_pthread_create(thread, attr, routine, arg);
  *request = StartRequest{routine, arg, ts.slot ? ts.slot->tid.load() : current_tid()};
  const int rc = g_real_pthread_create(thread, attr, thread_trampoline, request);
  if (rc != 0) real.free(request);
  return rc;
}

}  // extern "C"

namespace {

void after_fork_in_child() { agent_after_fork_child(); }

__attribute__((constructor)) void preload_start() {
  resolve_real();
  if (real.malloc == nullptr || real.malloc_usable_size == nullptr || g_real_pthread_create == nullptr)
    return;  // nothing to forward to: stay a pass-through
  ThreadState& ts = t_state;
  ts.busy = 1;
  if (pthread_key_create(&exit_key, on_thread_exit) == 0) exit_key_ready.store(true, std::memory_order_release);
  pthread_atfork(nullptr, nullptr, after_fork_in_child);
  AgentConfig config = config_from_env();
  ts.busy = 0;
  agent_start(config);
  ts.busy = 1;
  register_thread_exit(ts);
  ts.busy = 0;
}

__attribute__((destructor)) void preload_stop() { agent_stop(); }

}  // namespace
