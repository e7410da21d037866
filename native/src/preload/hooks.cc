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
#include "../core/agent_heap.h"
#include "../core/ledger.h"
#include "../core/hook_exit.h"
#include "../core/real_allocator.h"
#include "sample_header.h"

using namespace leakscope;

// Two builds of this file: libleakscope.so, the default
// (LEAKSCOPE_SAMPLED_COUNTS=1), counts only the samples, whose estimates
// stand for the rest (Ledger::counts_sampled), so that its common call runs
// the sampling countdown and nothing more; libleakscope-exact.so counts
// every call exactly.
#ifndef LEAKSCOPE_SAMPLED_COUNTS
#define LEAKSCOPE_SAMPLED_COUNTS 0
#endif
constexpr bool kCountEveryCall = !LEAKSCOPE_SAMPLED_COUNTS;

namespace {

RealAllocator real;

// Over glibc, sampled blocks carry their owner in a header (sample_header.h);
// set once, before the first accounted call, and never changed.
bool sample_headers = false;
SampleMarkers markers;

bool sample_headers_wanted() {
  const char* setting = getenv("LEAKSCOPE_SAMPLE_HEADERS");
  return setting == nullptr || strcmp(setting, "off") != 0;
}

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
  // Bit 3 in the word before, which no glibc chunk size has: free() then
  // takes these blocks off its fast path (free_marked), as it does samples.
  *reinterpret_cast<size_t*>(bootstrap_arena + at + 8) = 8;
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
  if (r.glibc_chunks && sample_headers_wanted()) {
    markers.init();
    sample_headers = true;
  }
  real = r;
  g_forwarded_malloc = reinterpret_cast<void*>(r.malloc);
  resolve_state.store(2);
}

inline bool resolving() {
  if (__builtin_expect(resolve_state.load(std::memory_order_acquire) == 2, 1)) return false;
  if (resolve_state.load() == 0) resolve_real();
  return resolve_state.load() != 2;  // we are inside dlsym: use the arena
}

// A hook's call is counted unless the agent (or a hook) is at work on this
// thread already, or the agent is not counting. Entering sets the guard
// that keeps the agent's own allocations out.
inline bool enter(ThreadState& ts) {
  if (ts.busy || !g_accounting.load(std::memory_order_relaxed)) return false;
  ts.busy = 1;
  return true;
}
inline void* account_alloc(ThreadState& ts, void* block) { return leakscope::account_alloc(ts, real, block); }

// A block the allocator gave, counted where every call is; where samples
// alone are counted, nothing (and a hook that returns it is a tail call).
inline void count_allocated(ThreadState& ts, void* block) {
  if constexpr (kCountEveryCall) {
    if (__builtin_expect(block != nullptr, 1)) count_alloc_in(*ts.slot, real.usable_size(block));
  }
}

// A sampled allocation with its header: `allocate(n)` asks the real
// allocator for n bytes, aligned as the program's call asked.
template <typename Allocate>
void* allocate_with_header(ThreadState& ts, size_t requested, size_t alignment, Allocate& allocate) {
  const size_t offset = SampleHeader::offset_for(alignment);
  if (offset == 0 || requested > SIZE_MAX - offset) {
    // Not sampled this way: the countdown stays due, and the next call is.
    void* block = allocate(requested);
    count_allocated(ts, block);
    return block;
  }
  void* raw = allocate(requested + offset);
  if (raw == nullptr) return nullptr;
  const size_t usable = real.usable_size(raw) - offset;
  const OwnerRecord owner = next_sample(ts, requested, usable);
  void* block = markers.stamp(raw, offset, owner);
  if constexpr (kCountEveryCall) count_alloc_in(*ts.slot, usable);
  count_sample(ts, owner, usable);
  return block;
}

// An agent thread's allocation: from the agent's own heap, so that the
// program's allocator never sees the agent's threads; from the program's
// allocator only when the agent's heap is full.
template <typename Allocate>
__attribute__((noinline)) void* allocate_for_agent(size_t requested, size_t alignment, Allocate& allocate) {
  void* block = g_agent_heap.allocate(requested, alignment < 16 ? 16 : alignment);
  return block != nullptr ? block : allocate(requested);
}

// The slow path of an allocation: before the hooks are resolved, a thread's
// first call, calls while the agent does not count, samples, and every call
// of the agent's own threads.
template <typename Allocate>
__attribute__((noinline)) void* allocate_slow(ThreadState& ts, size_t requested, size_t alignment, Allocate& allocate) {
  if (resolving()) return alignment == 0 ? bootstrap_alloc(requested) : nullptr;
  if (__builtin_expect(ts.internal, 0)) return allocate_for_agent(requested, alignment, allocate);
  if (!kCountEveryCall && ts.busy) {
    // The agent's own call, which the common call did not look for: not a
    // sample, and the countdown starts again, as after one.
    if (ts.slot != nullptr) restart_countdown(ts);
    return allocate(requested);
  }
  switch (slow_call(ts, requested, claim_counting_slot)) {
    case SlowCall::kUncounted:
      return allocate(requested);
    case SlowCall::kCounted: {
      void* block = allocate(requested);
      count_allocated(ts, block);
      return block;
    }
    case SlowCall::kSampled:
      break;
  }
  ts.busy = 1;
  void* block;
  if (sample_headers) {
    block = allocate_with_header(ts, requested, alignment, allocate);
  } else {
    block = allocate(requested);  // failed: the countdown stays due
    if (block != nullptr) {
      const size_t usable = real.usable_size(block);
      if constexpr (kCountEveryCall) count_alloc_in(*ts.slot, usable);
      take_sample(ts, block, requested, usable);
    }
  }
  leave(ts);
  return block;
}

// Hot path of every allocation: `allocate(n)` as above. The countdown to
// the next sample runs before the call. It is above zero only while the
// thread has a slot (claim_slot and next_sample set it) or forwards for
// good (forward_for_good, with the guard set), so the exact library's
// common call checks the guard and the count and counts into the slot.
// The default library's common call records nothing and checks the count
// alone: the agent's own calls (the guard set) move the countdown too, and
// the slow path lets them through. No guard is set here: the allocators
// the hooks forward to do not call back into them.
template <typename Allocate>
inline void* allocate_hooked(size_t requested, size_t alignment, Allocate&& allocate) {
  ThreadState& ts = t_state;
  if constexpr (kCountEveryCall) {
    if (__builtin_expect(ts.busy, 0)) return ts.internal ? allocate_for_agent(requested, alignment, allocate) : allocate(requested);
  }
  if (__builtin_expect(detail::count_down(ts, requested), 0)) return allocate_slow(ts, requested, alignment, allocate);
  void* block = allocate(requested);
  count_allocated(ts, block);
  return block;
}

// What the program may use of a block with a header.
size_t usable_with_header(void* block, const SampleHeader& header) {
  return real.usable_size(static_cast<char*>(block) - header.offset) - header.offset;
}

// The free of a block whose word before may be a marker.
__attribute__((noinline)) void free_marked(void* block, size_t word_before) {
  if (in_bootstrap(block)) return;
  if (g_agent_heap.owns(block)) return g_agent_heap.release(block);
  SampleHeader* header = markers.header_of(block, word_before);
  if (header == nullptr) return real.free(block);  // not ours: the allocator judges it
  ThreadState& ts = t_state;
  if (enter(ts)) {
    const size_t usable = usable_with_header(block, *header);
    ThreadSlot* slot = kCountEveryCall ? count_free(ts, usable) : detail::slot_of(ts);
    if (slot != nullptr) settle_sample(ts, header->owner_record(), usable);
    leave(ts);
  }
  void* raw = static_cast<char*>(block) - header->offset;
  header->marker = 0;  // a second free of it is the allocator's to catch
  real.free(raw);
}

// The free of a thread's first call, when it has no slot yet.
__attribute__((noinline)) void free_claiming(void* block, size_t word_before) {
  ThreadState& ts = t_state;
  if (claim_counting_slot(ts)) count_free_in(*ts.slot, RealAllocator::glibc_usable(word_before));
  real.free(block);
}

// The sampled-counts build: the table's filter let `block` through, so it
// may be a sample. Settled before the allocator may hand the address to
// another thread.
__attribute__((noinline)) void free_table_sample(void* block) {
  ThreadState& ts = t_state;
  if (!enter(ts)) return;
  if (detail::slot_of(ts) != nullptr) settle_if_sampled(ts, block, real.usable_size(block));
  leave(ts);
}

// The free of any block when samples are kept in the ownership table (any
// allocator but glibc's, or LEAKSCOPE_SAMPLE_HEADERS=off): the same flag
// and slot as on glibc, the allocator's own size, and the table's filter.
__attribute__((noinline)) void free_with_table(void* block) {
  if (in_bootstrap(block)) return;
  if (__builtin_expect(g_agent_heap.owns(block), 0)) return g_agent_heap.release(block);
  if constexpr (!kCountEveryCall) {
    if (__builtin_expect(g_ownership.might_hold(uintptr_t(block)), 0)) free_table_sample(block);
    return real.free(block);
  }
  ThreadState& ts = t_state;
  if (__builtin_expect(ts.busy != 0, 0)) return real.free(block);
  if (__builtin_expect(ts.slot == nullptr, 0) && !claim_counting_slot(ts)) return real.free(block);
  const size_t usable = real.usable_size(block);
  count_free_in(*ts.slot, usable);
  // Before the allocator may hand the address to another thread.
  if (__builtin_expect(g_ownership.might_hold(uintptr_t(block)), 0)) {
    ts.busy = 1;
    settle_if_sampled(ts, block, usable);
    leave(ts);
  }
  return real.free(block);
}

// A block with a header moves by copy; so does a block that becomes a sample.
void* realloc_by_copy(void* block, size_t old_usable, size_t size) {
  if (size == 0) {  // glibc's realloc(p, 0) frees p and returns NULL
    free(block);
    return nullptr;
  }
  void* moved = malloc(size);
  if (moved == nullptr) return nullptr;
  memcpy(moved, block, old_usable < size ? old_usable : size);
  free(block);
  return moved;
}

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
  ts.stack_hi = uintptr_t(__builtin_frame_address(0));
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
  return allocate_hooked(size, 0, [](size_t n) { return real.malloc(n); });
}

__attribute__((visibility("default"))) void free(void* block) {
  if (block == nullptr) return;
  if (!sample_headers) return free_with_table(block);
  const size_t word_before = RealAllocator::size_field(block);
  // A sampled block's header, or the bootstrap arena's blocks (bootstrap_alloc).
  if (__builtin_expect(SampleHeader::may_be_marker(word_before), 0)) return free_marked(block, word_before);
  if constexpr (!kCountEveryCall) return real.free(block);
  ThreadState& ts = t_state;
  ThreadSlot* slot = ts.slot;
  if (__builtin_expect(ts.busy == 0 && slot != nullptr, 1)) {
    count_free_in(*slot, RealAllocator::glibc_usable(word_before));
  } else if (ts.busy == 0) {
    free_claiming(block, word_before);
    return;
  }
  return real.free(block);
}

__attribute__((visibility("default"))) void* calloc(size_t count, size_t size) {
  if (resolving()) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) return nullptr;
    return bootstrap_alloc(total);
  }
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) return real.calloc(count, size);
  return allocate_hooked(total, 0, [](size_t n) { return real.calloc(1, n); });
}

__attribute__((visibility("default"))) void* realloc(void* block, size_t size) {
  if (block != nullptr && in_bootstrap(block)) {
    void* moved = malloc(size);
    if (moved != nullptr) memcpy(moved, block, bootstrap_size(block) < size ? bootstrap_size(block) : size);
    return moved;
  }
  if (resolving()) return bootstrap_alloc(size);
  if (block == nullptr) return malloc(size);
  // A block of the agent's heap (from any thread) stays there while there is room.
  if (g_agent_heap.owns(block)) return g_agent_heap.reallocate(block, size, [](size_t n) { return real.malloc(n); });
  ThreadState& ts = t_state;
  const size_t word_before = sample_headers ? RealAllocator::size_field(block) : 0;
  if (sample_headers) {
    if (SampleHeader* header = markers.header_of(block, word_before))
      return realloc_by_copy(block, usable_with_header(block, *header), size);
  }
  if (!enter(ts)) return real.realloc(block, size);
  const size_t old_usable = sample_headers ? RealAllocator::glibc_usable(word_before) : real.usable_size(block);
  // Where the countdown runs before allocating (headers, or samples alone
  // counted), a new block due to be a sample (or a thread's first) is made
  // by malloc, and the old one moves to it.
  if ((sample_headers || !kCountEveryCall) && size != 0 && detail::count_down(ts, size)) {
    leave(ts);
    return realloc_by_copy(block, old_usable, size);
  }
  if constexpr (!kCountEveryCall) {
    // Out of the table before the allocator may hand the address to another
    // thread; if the allocator fails, the old block stays, unsampled.
    if (!sample_headers && g_ownership.might_hold(uintptr_t(block)) && detail::slot_of(ts) != nullptr)
      settle_if_sampled(ts, block, old_usable);
    void* moved = real.realloc(block, size);
    leave(ts);
    return moved;
  }
  if (sample_headers) {
    count_free(ts, old_usable);
    void* moved = real.realloc(block, size);
    if (moved == nullptr && size != 0) {
      count_alloc(ts, old_usable);  // failed: the old block is still live
    } else if (moved != nullptr) {
      count_alloc(ts, real.usable_size(moved));
    }
    leave(ts);
    return moved;
  }
  // The old block leaves the ownership table before the allocator may hand
  // its address to another thread.
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
  const bool valid = alignment % sizeof(void*) == 0 && (alignment & (alignment - 1)) == 0 && alignment != 0;
  if (!valid) return real.posix_memalign(out, alignment, size);  // EINVAL
  void* block = allocate_hooked(size, alignment, [alignment](size_t n) {
    void* raw = nullptr;
    return real.posix_memalign(&raw, alignment, n) == 0 ? raw : nullptr;
  });
  if (block == nullptr) return ENOMEM;
  *out = block;
  return 0;
}

__attribute__((visibility("default"))) void* aligned_alloc(size_t alignment, size_t size) {
  if (resolving()) return nullptr;
  return allocate_hooked(size, alignment, [alignment](size_t n) { return real.aligned_alloc(alignment, n); });
}

__attribute__((visibility("default"))) void* memalign(size_t alignment, size_t size) {
  if (resolving()) return nullptr;
  return allocate_hooked(size, alignment, [alignment](size_t n) { return real.memalign(alignment, n); });
}

__attribute__((visibility("default"))) void* valloc(size_t size) {
  if (resolving()) return nullptr;
  return allocate_hooked(size, page_size(), [](size_t n) { return real.valloc(n); });
}

__attribute__((visibility("default"))) void* pvalloc(size_t size) {
  if (resolving()) return nullptr;
  const size_t page = page_size();
  if (size > SIZE_MAX - page) return real.pvalloc(size);
  const size_t pages = size == 0 ? page : (size + page - 1) & ~(page - 1);  // what pvalloc gives
  return allocate_hooked(pages, page, [](size_t n) { return real.pvalloc(n); });
}

__attribute__((visibility("default"))) size_t malloc_usable_size(void* block) {
  if (block == nullptr) return 0;
  if (in_bootstrap(block)) return bootstrap_size(block);
  if (g_agent_heap.owns(block)) return g_agent_heap.usable(block);
  if (resolving()) return 0;
  if (sample_headers) {
    if (SampleHeader* header = markers.header_of(block, RealAllocator::size_field(block)))
      return usable_with_header(block, *header);
  }
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
  if (sample_headers) config.sample_store = "headers";
  if constexpr (!kCountEveryCall) config.counts = "sampled";
  ts.busy = 0;
  agent_start(config);
  ts.busy = 1;
  register_thread_exit(ts);
  ts.busy = 0;
}

__attribute__((destructor)) void preload_stop() { agent_stop(); }

}  // namespace
