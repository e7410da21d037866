#include "got_hooks.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ledger.h"
#include "ownership.h"
#include "hook_exit.h"
#include "real_allocator.h"

namespace leakscope {

namespace {

RealAllocator real;

// A hooked call is accounted only while the ledger counts from late hooks,
// and never from inside the agent (or a hook) on this thread.
inline bool enter(ThreadState& ts) {
  if (ts.busy || ts.internal || g_ledger.scope.load(std::memory_order_relaxed) != kLedgerSince) return false;
  ts.busy = 1;
  return true;
}
inline void* account_alloc(ThreadState& ts, void* block) { return leakscope::account_alloc(ts, real, block); }

void* hook_malloc(size_t size) {
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.malloc(size);
  return account_alloc(ts, real.malloc(size));
}

void hook_free(void* block) {
  ThreadState& ts = t_state;
  if (block == nullptr || !enter(ts)) return real.free(block);
  on_free_sampled(ts, block);
  real.free(block);
  leave(ts);
}

void* hook_calloc(size_t count, size_t size) {
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.calloc(count, size);
  return account_alloc(ts, real.calloc(count, size));
}

void* hook_realloc(void* block, size_t size) {
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.realloc(block, size);
  if (block == nullptr) return account_alloc(ts, real.realloc(nullptr, size));
  // The old block leaves the ownership table before its address can be reused.
  on_free_sampled(ts, block);
  void* moved = real.realloc(block, size);
  if (moved == nullptr && size != 0) {
    leave(ts);  // failed: the old block lives on, unsampled from now
    return nullptr;
  }
  return account_alloc(ts, moved);
}

// reallocarray through a hook's realloc: the product's overflow checked
// first, as the C library does.
template <void* (*Realloc)(void*, size_t)>
void* reallocarray_with(void* block, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return Realloc(block, total);
}

int hook_posix_memalign(void** out, size_t alignment, size_t size) {
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.posix_memalign(out, alignment, size);
  const int rc = real.posix_memalign(out, alignment, size);
  account_alloc(ts, rc == 0 ? *out : nullptr);
  return rc;
}

void* hook_aligned_alloc(size_t alignment, size_t size) {
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.aligned_alloc(alignment, size);
  return account_alloc(ts, real.aligned_alloc(alignment, size));
}

void* hook_memalign(size_t alignment, size_t size) {
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.memalign(alignment, size);
  return account_alloc(ts, real.memalign(alignment, size));
}

void* hook_valloc(size_t size) {
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.valloc(size);
  return account_alloc(ts, real.valloc(size));
}

void* hook_pvalloc(size_t size) {
  ThreadState& ts = t_state;
  if (!enter(ts)) return real.pvalloc(size);
  return account_alloc(ts, real.pvalloc(size));
}

// Where only samples are counted (Ledger::counts_sampled: the injected
// agent), the common call runs the sampling countdown and nothing more, as
// the LD_PRELOAD library's default build does; the countdown sends a
// thread's first call, calls while the ledger does not count, and samples
// to the slow path. A free looks the block up only when the ownership
// table's filter lets it through.
template <typename Allocate>
__attribute__((noinline)) void* sampled_slow(ThreadState& ts, size_t requested, Allocate&& allocate) {
  if (ts.busy || g_ledger.scope.load(std::memory_order_relaxed) != kLedgerSince) {
    // The agent's own call, or no counting now: not a sample, and the
    // countdown starts again so that the next calls run fast.
    if (ts.slot != nullptr) restart_countdown(ts);
    else if (!ts.busy) ts.bytes_until_sample = int64_t(g_ledger.sample_interval);
    return allocate(requested);
  }
  switch (slow_call(ts, requested, claim_counting_slot)) {
    case SlowCall::kUncounted:
    case SlowCall::kCounted:
      return allocate(requested);
    case SlowCall::kSampled:
      break;
  }
  ts.busy = 1;
  void* block = allocate(requested);  // failed: the countdown stays due
  if (block != nullptr) take_sample(ts, block, requested, real.usable_size(block));
  leave(ts);
  return block;
}

template <typename Allocate>
inline void* sampled(size_t requested, Allocate&& allocate) {
  ThreadState& ts = t_state;
  if (__builtin_expect(!detail::count_down(ts, requested), 1)) return allocate(requested);
  return sampled_slow(ts, requested, allocate);
}

// The table's filter let `block` through: it may be a sample, settled
// before the allocator may hand the address to another thread.
__attribute__((noinline)) void free_sample(void* block) {
  ThreadState& ts = t_state;
  if (!enter(ts)) return;
  if (detail::slot_of(ts) != nullptr) settle_if_sampled(ts, block, real.usable_size(block));
  leave(ts);
}

inline void free_sampled_table(void* block) {
  if (__builtin_expect(g_ownership.might_hold(uintptr_t(block)), 0)) free_sample(block);
}

void* sampled_malloc(size_t size) {
  return sampled(size, [](size_t n) { return real.malloc(n); });
}

void sampled_free(void* block) {
  free_sampled_table(block);
  real.free(block);
}

void* sampled_calloc(size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) return real.calloc(count, size);
  return sampled(total, [count, size](size_t) { return real.calloc(count, size); });
}

void* sampled_realloc(void* block, size_t size) {
  if (block != nullptr) free_sampled_table(block);
  return sampled(size, [block](size_t n) { return real.realloc(block, n); });
}

int sampled_posix_memalign(void** out, size_t alignment, size_t size) {
  int rc = 0;
  void* block = sampled(size, [&](size_t n) {
    rc = real.posix_memalign(out, alignment, n);
    return rc == 0 ? *out : nullptr;
  });
  if (rc == 0) *out = block;
  return rc;
}

void* sampled_aligned_alloc(size_t alignment, size_t size) {
  return sampled(size, [alignment](size_t n) { return real.aligned_alloc(alignment, n); });
}

void* sampled_memalign(size_t alignment, size_t size) {
  return sampled(size, [alignment](size_t n) { return real.memalign(alignment, n); });
}

void* sampled_valloc(size_t size) {
  return sampled(size, [](size_t n) { return real.valloc(n); });
}

void* sampled_pvalloc(size_t size) {
  return sampled(size, [](size_t n) { return real.pvalloc(n); });
}

struct Hook {
  const char* name;
  void* hook;     // counts every call (the Node addon's)
  void* sampled;  // counts the samples alone (Ledger::counts_sampled)
};

const Hook kHooks[] = {
    {"malloc", reinterpret_cast<void*>(hook_malloc), reinterpret_cast<void*>(sampled_malloc)},
    {"free", reinterpret_cast<void*>(hook_free), reinterpret_cast<void*>(sampled_free)},
    {"calloc", reinterpret_cast<void*>(hook_calloc), reinterpret_cast<void*>(sampled_calloc)},
    {"realloc", reinterpret_cast<void*>(hook_realloc), reinterpret_cast<void*>(sampled_realloc)},
    {"reallocarray", reinterpret_cast<void*>(reallocarray_with<hook_realloc>),
     reinterpret_cast<void*>(reallocarray_with<sampled_realloc>)},
    {"posix_memalign", reinterpret_cast<void*>(hook_posix_memalign), reinterpret_cast<void*>(sampled_posix_memalign)},
    {"aligned_alloc", reinterpret_cast<void*>(hook_aligned_alloc), reinterpret_cast<void*>(sampled_aligned_alloc)},
    {"memalign", reinterpret_cast<void*>(hook_memalign), reinterpret_cast<void*>(sampled_memalign)},
    {"valloc", reinterpret_cast<void*>(hook_valloc), reinterpret_cast<void*>(sampled_valloc)},
    {"pvalloc", reinterpret_cast<void*>(hook_pvalloc), reinterpret_cast<void*>(sampled_pvalloc)},
};

const Hook* hook_named(const char* name) {
  for (const Hook& h : kHooks)
    if (strcmp(h.name, name) == 0) return &h;
  return nullptr;
}

bool is_hook(uintptr_t value) {
  for (const Hook& h : kHooks)
    if (uintptr_t(h.hook) == value || uintptr_t(h.sampled) == value) return true;
  return false;
}

// The hook a GOT entry gets: the sampled one where only samples are counted.
void* hook_for(const Hook& h) { return g_ledger.counts_sampled ? h.sampled : h.hook; }

std::mutex g_lock;  // guards the fields below
bool g_installed = false;
unsigned long long g_seen_adds = 0;  // dlpi_adds at the last scan
std::unordered_map<uintptr_t, uintptr_t> g_originals;  // GOT entry → its value before the hook
std::unordered_set<uintptr_t> g_objects;                // base addresses of the objects hooked
const void* g_own_base = nullptr;

// Objects whose calls stay unhooked: the allocator's home, the loader, the
// vDSO, and this addon (the agent's own allocations are not the program's).
bool skipped(const dl_phdr_info* info) {
  const char* name = info->dlpi_name ? info->dlpi_name : "";
  const char* base = strrchr(name, '/');
  base = base ? base + 1 : name;
  if (strncmp(base, "libc.so", 7) == 0 || strncmp(base, "ld-linux", 8) == 0 || strncmp(base, "linux-vdso", 10) == 0 ||
      strncmp(base, "libleakscope", 12) == 0)
    return true;
  return reinterpret_cast<const void*>(info->dlpi_addr) == g_own_base && name[0] != '\0';
}

// A GOT entry may sit in RELRO (read-only once relocated): made writable
// for the store, read-only again after.
void write_entry(uintptr_t entry, uintptr_t value, bool relro) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  void* start = reinterpret_cast<void*>(entry & ~(page - 1));
  if (relro && mprotect(start, page, PROT_READ | PROT_WRITE) != 0) return;
  __atomic_store_n(reinterpret_cast<uintptr_t*>(entry), value, __ATOMIC_RELEASE);
  if (relro) mprotect(start, page, PROT_READ);
}

// The dynamic tables of a loaded object that name its imports.
struct Imports {
  const ElfW(Sym)* symbols = nullptr;
  const char* strings = nullptr;
  const ElfW(Rela)* tables[2] = {nullptr, nullptr};  // DT_JMPREL (if RELA), DT_RELA
  size_t bytes[2] = {0, 0};
  uintptr_t relro_start = 0, relro_end = 0;
};

bool imports_of(const dl_phdr_info* info, Imports* out) {
  const ElfW(Dyn)* dynamic = nullptr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_DYNAMIC) dynamic = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + ph.p_vaddr);
    if (ph.p_type == PT_GNU_RELRO) {
      // The pages the loader made read-only: both ends rounded down, as
      // _dl_protect_relro does (the last, partial page stays writable).
      const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
      out->relro_start = (info->dlpi_addr + ph.p_vaddr) & ~(page - 1);
      out->relro_end = (info->dlpi_addr + ph.p_vaddr + ph.p_memsz) & ~(page - 1);
    }
  }
  if (dynamic == nullptr) return false;
  // The loader relocates these pointers in place; an object whose dynamic
  // section it left alone still has them relative to its base.
  auto address = [&](ElfW(Addr) ptr) { return ptr < info->dlpi_addr ? ptr + info->dlpi_addr : ptr; };
  bool plt_is_rela = true;
  for (const ElfW(Dyn)* d = dynamic; d->d_tag != DT_NULL; ++d) {
    switch (d->d_tag) {
      case DT_SYMTAB: out->symbols = reinterpret_cast<const ElfW(Sym)*>(address(d->d_un.d_ptr)); break;
      case DT_STRTAB: out->strings = reinterpret_cast<const char*>(address(d->d_un.d_ptr)); break;
      case DT_JMPREL: out->tables[0] = reinterpret_cast<const ElfW(Rela)*>(address(d->d_un.d_ptr)); break;
      case DT_PLTRELSZ: out->bytes[0] = d->d_un.d_val; break;
      case DT_PLTREL: plt_is_rela = d->d_un.d_val == DT_RELA; break;
      case DT_RELA: out->tables[1] = reinterpret_cast<const ElfW(Rela)*>(address(d->d_un.d_ptr)); break;
      case DT_RELASZ: out->bytes[1] = d->d_un.d_val; break;
      default: break;
    }
  }
  if (!plt_is_rela) out->tables[0] = nullptr;
  return out->symbols != nullptr && out->strings != nullptr;
}

// Calls `each(name, entry, relro)` for every GOT entry through which the
// object calls (or takes the address of) a function it imports.
template <typename F>
void for_each_import(const dl_phdr_info* info, F each) {
  Imports imports;
  if (!imports_of(info, &imports)) return;
  for (int t = 0; t < 2; ++t) {
    if (imports.tables[t] == nullptr) continue;
    const size_t count = imports.bytes[t] / sizeof(ElfW(Rela));
    for (size_t i = 0; i < count; ++i) {
      const ElfW(Rela)& r = imports.tables[t][i];
      const uint32_t type = ELF64_R_TYPE(r.r_info);
      if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
      const uint32_t symbol = ELF64_R_SYM(r.r_info);
      if (symbol == 0 || imports.symbols[symbol].st_shndx != SHN_UNDEF) continue;
      const uintptr_t entry = info->dlpi_addr + r.r_offset;
      each(imports.strings + imports.symbols[symbol].st_name, entry,
           entry >= imports.relro_start && entry < imports.relro_end);
    }
  }
}

int hook_object(dl_phdr_info* info, size_t, void* data) {
  const bool install = *static_cast<bool*>(data);
  if (skipped(info)) return 0;
  bool touched = false;
  for_each_import(info, [&](const char* name, uintptr_t entry, bool relro) {
    const Hook* hook = hook_named(name);
    if (hook == nullptr) return;
    const uintptr_t now = __atomic_load_n(reinterpret_cast<uintptr_t*>(entry), __ATOMIC_ACQUIRE);
    if (install) {
      if (is_hook(now)) return;
      g_originals[entry] = now;
      write_entry(entry, uintptr_t(hook_for(*hook)), relro);
    } else {
      auto original = g_originals.find(entry);
      if (!is_hook(now) || original == g_originals.end()) return;
      write_entry(entry, original->second, relro);
    }
    touched = true;
  });
  if (touched && install) g_objects.insert(info->dlpi_addr);
  return 0;
}

bool contains(const dl_phdr_info* info, uintptr_t address) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && address >= start && address < start + ph.p_memsz) return true;
  }
  return false;
}

std::vector<dl_phdr_info> loaded_objects() {
  std::vector<dl_phdr_info> objects;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        static_cast<std::vector<dl_phdr_info>*>(data)->push_back(*info);
        return 0;
      },
      &objects);
  return objects;
}

bool imports(const dl_phdr_info& info, const char* wanted) {
  bool found = false;
  for_each_import(&info, [&](const char* name, uintptr_t, bool) { found = found || strcmp(name, wanted) == 0; });
  return found;
}

// Where the program's calls to `name` end up. dlsym(RTLD_DEFAULT) is not
// it when the executable is not position-independent and takes the
// function's address: the symbol it finds is the executable's own PLT entry
// (the canonical address), which leads through the executable's GOT, the
// very entry the hook replaces. Then the definition is the first object in
// load order (the global search order) that defines it. (dlopen is called
// outside dl_iterate_phdr, which holds a loader lock.)
void* definition_of(const char* name) {
  void* global = dlsym(RTLD_DEFAULT, name);
  if (global == nullptr) return nullptr;
  const std::vector<dl_phdr_info> objects = loaded_objects();
  bool canonical_plt = false;
  for (const dl_phdr_info& info : objects)
    if (contains(&info, uintptr_t(global))) canonical_plt = imports(info, name);
  if (!canonical_plt) return global;  // a real definition
  for (const dl_phdr_info& info : objects) {
    if (info.dlpi_name == nullptr || info.dlpi_name[0] == '\0' || strncmp(info.dlpi_name, "linux-vdso", 10) == 0) continue;
    void* handle = dlopen(info.dlpi_name, RTLD_NOLOAD | RTLD_LAZY);
    if (handle == nullptr) continue;
    void* found = dlsym(handle, name);
    dlclose(handle);
    if (found != nullptr && contains(&info, uintptr_t(found)) && !imports(info, name)) return found;
  }
  return nullptr;
}

int count_adds(dl_phdr_info* info, size_t size, void* data) {
  if (size >= offsetof(dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds)
    *static_cast<unsigned long long*>(data) = info->dlpi_adds;
  return 1;  // the counter is the same in every entry
}

template <typename F>
bool resolve(F& slot, const char* name) {
  slot = reinterpret_cast<F>(definition_of(name));
  return slot != nullptr;
}

bool resolve_real(std::string* error) {
  if (real.malloc != nullptr) return true;
  RealAllocator r{};
  const bool found = resolve(r.malloc, "malloc") && resolve(r.free, "free") && resolve(r.calloc, "calloc") &&
                     resolve(r.realloc, "realloc") && resolve(r.posix_memalign, "posix_memalign") &&
                     resolve(r.aligned_alloc, "aligned_alloc") && resolve(r.memalign, "memalign") &&
                     resolve(r.valloc, "valloc") && resolve(r.pvalloc, "pvalloc") &&
                     resolve(r.malloc_usable_size, "malloc_usable_size");
  if (!found) {
    *error = "the process's allocator lacks part of the malloc family";
    return false;
  }
  Dl_info own{};
  if (dladdr(reinterpret_cast<void*>(hook_malloc), &own) != 0) g_own_base = own.dli_fbase;
  r.glibc_chunks = forwarding_to_glibc(reinterpret_cast<void*>(r.malloc));
  real = r;
  return true;
}

}  // namespace

bool install_got_hooks(GotHookStats* stats, std::string* error) {
  AgentWork own;
  std::lock_guard<std::mutex> hold(g_lock);
  if (!resolve_real(error)) return false;
  unsigned long long adds = 0;
  dl_iterate_phdr(count_adds, &adds);
  if (g_installed && adds == g_seen_adds) {  // nothing loaded since
    stats->objects = g_objects.size();
    stats->entries = g_originals.size();
    return true;
  }
  if (!g_installed) ledger_restart_since(wall_ms());
  bool install = true;
  dl_iterate_phdr(hook_object, &install);
  g_installed = true;
  g_seen_adds = adds;
  stats->objects = g_objects.size();
  stats->entries = g_originals.size();
  return true;
}

void* got_hooks_forwarded_malloc() {
  AgentWork own;
  std::lock_guard<std::mutex> hold(g_lock);
  std::string error;
  return resolve_real(&error) ? reinterpret_cast<void*>(real.malloc) : nullptr;
}

void remove_got_hooks() {
  AgentWork own;
  std::lock_guard<std::mutex> hold(g_lock);
  if (!g_installed) return;
  ledger_stop();
  bool install = false;
  dl_iterate_phdr(hook_object, &install);
  g_originals.clear();
  g_objects.clear();
  g_installed = false;
}

}  // namespace leakscope
