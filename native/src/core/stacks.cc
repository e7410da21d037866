#include "stacks.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <unistd.h>
#include <unwind.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ledger.h"

extern "C" void* __libc_stack_end;  // glibc: the main thread's stack, near its top

namespace leakscope {

StackTable g_stacks;

namespace {

uint64_t hash_frames(const uintptr_t* frames, uint32_t depth) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ depth;
  for (uint32_t i = 0; i < depth; ++i) {
    h ^= frames[i];
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  return h == 0 ? 1 : h;
}

// The object holding `address`, from the loader's list: its executable
// segments' span.
struct TextSpan {
  uintptr_t address, lo = 0, hi = 0;
  bool main_program = false;
};

int find_text_span(dl_phdr_info* info, size_t, void* data) {
  auto* span = static_cast<TextSpan*>(data);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    lo = std::min<uintptr_t>(lo, info->dlpi_addr + ph.p_vaddr);
    hi = std::max<uintptr_t>(hi, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
  }
  if (span->address < lo || span->address >= hi) return 0;
  span->lo = lo;
  span->hi = hi;
  span->main_program = info->dlpi_name == nullptr || info->dlpi_name[0] == '\0';
  return 1;
}

}  // namespace

// One stack being walked: frames of the agent's own object are skipped
// while they lead (the hooks and the sample path), then up to
// kMaxStackDepth return addresses are kept.
struct StackWalk {
  explicit StackWalk(const StackTable& t) : table(t) {}
  const StackTable& table;
  uintptr_t frames[kMaxStackDepth];
  uint32_t depth = 0;
  bool leading = true;

  // False when the walk is to stop.
  bool add(uintptr_t ip) {
    if (ip == 0) return false;
    if (leading && ip >= table.own_lo_ && ip < table.own_hi_) return true;
    leading = false;
    frames[depth++] = ip;
    return depth < kMaxStackDepth;
  }

  static _Unwind_Reason_Code on_frame(_Unwind_Context* context, void* raw) {
    auto* walk = static_cast<StackWalk*>(raw);
    return walk->add(_Unwind_GetIP(context)) ? _URC_NO_REASON : _URC_END_OF_STACK;
  }

  void dwarf() { _Unwind_Backtrace(on_frame, this); }

  // The %rbp chain: each frame's saved %rbp is above the last, 16-aligned
  // frames of at most 1 MiB, inside [here, stack_hi). A chain that leaves
  // the stack ends the walk (code without frame pointers may leave anything
  // in %rbp, which is never read outside the stack).
  __attribute__((noinline)) void frame_pointers(uintptr_t stack_hi) {
    uintptr_t fp = uintptr_t(__builtin_frame_address(0));
    const uintptr_t lo = fp;
    while (fp >= lo && fp + 16 <= stack_hi && (fp & 7) == 0) {
      const uintptr_t* frame = reinterpret_cast<const uintptr_t*>(fp);
      const uintptr_t next = frame[0];
      if (!add(frame[1])) return;
      if (next <= fp || next - fp > (uintptr_t(1) << 20)) return;
      fp = next;
    }
  }
};

Unwinder unwinder_from_env() {
  const char* setting = getenv("LEAKSCOPE_STACKS");
  if (setting == nullptr || *setting == '\0' || strcmp(setting, "dwarf") == 0 || strcmp(setting, "on") == 0)
    return Unwinder::kDwarf;
  if (strcmp(setting, "fp") == 0) return Unwinder::kFramePointers;
  return Unwinder::kOff;
}

void StackTable::init(Unwinder unwinder, uint64_t interval_bytes) {
  interval_ = interval_bytes == 0 ? 1 : interval_bytes;
  TextSpan span{uintptr_t(reinterpret_cast<void*>(&unwinder_from_env))};
  dl_iterate_phdr(find_text_span, &span);
  if (!span.main_program) {
    own_lo_ = span.lo;
    own_hi_ = span.hi;
  }
  if (t_state.stack_hi == 0) t_state.stack_hi = uintptr_t(__libc_stack_end) + 4096;
  unwinder_ = unwinder;
}

uint32_t StackTable::capture() {
  if (unwinder_ == Unwinder::kOff) return 0;
  StackWalk walk(*this);
  const uintptr_t stack_hi = t_state.stack_hi;
  if (unwinder_ == Unwinder::kFramePointers && stack_hi != 0) walk.frame_pointers(stack_hi);
  else walk.dwarf();
  if (walk.depth == 0) return 0;
  return intern(walk.frames, walk.depth);
}

uint32_t StackTable::intern(const uintptr_t* frames, uint32_t depth) {
  const uint64_t h = hash_frames(frames, depth);
  const uint32_t mask = kStackCapacity - 1;
  uint32_t index = uint32_t(h) & mask;
  for (uint32_t probe = 0; probe < 64; ++probe, index = (index + 1) & mask) {
    if (index == 0) continue;
    StackEntry& e = entries_[index];
    uint32_t state = e.state.load(std::memory_order_acquire);
    if (state == 2) {
      if (e.hash == h && e.depth == depth && memcmp(e.frames, frames, depth * sizeof(uintptr_t)) == 0) return index;
      continue;
    }
    if (state == 1) continue;  // another thread is writing it: a duplicate at worst, merged by the CLI
    if (!e.state.compare_exchange_strong(state, 1, std::memory_order_acq_rel)) {
      if (state == 2 && e.hash == h && e.depth == depth && memcmp(e.frames, frames, depth * sizeof(uintptr_t)) == 0)
        return index;
      continue;
    }
    memcpy(e.frames, frames, depth * sizeof(uintptr_t));
    e.depth = depth;
    e.hash = h;
    e.state.store(2, std::memory_order_release);
    used_.fetch_add(1, std::memory_order_relaxed);
    return index;
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

std::atomic<int64_t>* StackTable::site_live(uint32_t site, uint32_t id, bool claim) {
  if (id == 0 || id >= kStackCapacity) return nullptr;
  const uint64_t key = (uint64_t(site) + 1) << 32 | id;
  uint32_t index = uint32_t((key * 0x9E3779B97F4A7C15ull) >> 52) & (kSitePairs - 1);
  for (uint32_t probe = 0; probe < 32; ++probe, index = (index + 1) & (kSitePairs - 1)) {
    SitePair& p = site_pairs_[index];
    uint64_t seen = p.key.load(std::memory_order_acquire);
    if (seen == key) return &p.live_bytes;
    if (seen != 0) continue;
    if (!claim) return nullptr;
    if (p.key.compare_exchange_strong(seen, key, std::memory_order_acq_rel) || seen == key) return &p.live_bytes;
  }
  return nullptr;
}

void StackTable::site_sampled(uint32_t site, uint32_t id, uint64_t sample_weight) {
  if (std::atomic<int64_t>* live = site_live(site, id, true))
    live->fetch_add(int64_t(stack_weight(sample_weight)), std::memory_order_relaxed);
  else if (id != 0)
    site_dropped_.fetch_add(1, std::memory_order_relaxed);
}

void StackTable::site_freed(uint32_t site, uint32_t id, uint64_t sample_weight) {
  if (std::atomic<int64_t>* live = site_live(site, id, false))
    live->fetch_sub(int64_t(stack_weight(sample_weight)), std::memory_order_relaxed);
}

void StackTable::site_stacks(uint32_t site, size_t limit, std::vector<std::pair<uint32_t, int64_t>>* out) const {
  out->clear();
  for (const SitePair& p : site_pairs_) {
    const uint64_t key = p.key.load(std::memory_order_acquire);
    const int64_t live = p.live_bytes.load(std::memory_order_relaxed);
    if (key != 0 && (key >> 32) == uint64_t(site) + 1 && live > 0) out->emplace_back(uint32_t(key & 0xFFFFFFFF), live);
  }
  std::sort(out->begin(), out->end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (out->size() > limit) out->resize(limit);
}

void StackTable::restart_live() {
  for (SitePair& p : site_pairs_) p.live_bytes.store(0, std::memory_order_relaxed);
  for (StackEntry& e : entries_) {
    if (e.state.load(std::memory_order_relaxed) != 2) continue;
    e.live_blocks_milli.store(0, std::memory_order_relaxed);
    e.live_bytes.store(0, std::memory_order_relaxed);
    std::fill(std::begin(e.live_at), std::end(e.live_at), 0);
  }
}

void StackTable::checkpoint(uint64_t now_ms) {
  if (unwinder_ == Unwinder::kOff) return;
  if (last_checkpoint_ms_ != 0 && now_ms - last_checkpoint_ms_ < kCheckpointSeconds * 1000) return;
  last_checkpoint_ms_ = now_ms;
  const uint32_t at = checkpoints_taken_ % kCheckpoints;
  for (StackEntry& e : entries_) {
    if (e.state.load(std::memory_order_acquire) == 2) e.live_at[at] = e.live_bytes.load(std::memory_order_relaxed);
  }
  checkpoint_ms_[at] = now_ms;
  ++checkpoints_taken_;
}

namespace {

std::string hex(uintptr_t v) {
  char text[24];
  snprintf(text, sizeof text, "0x%lx", static_cast<unsigned long>(v));
  return text;
}

std::string self_exe() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  return n > 0 ? std::string(path, size_t(n)) : std::string();
}

// The GNU build id in an object's notes, as hex; empty when it has none.
std::string build_id_of(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const char* at = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    const char* end = at + ph.p_memsz;
    while (at + sizeof(ElfW(Nhdr)) <= end) {
      const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(at);
      const char* name = at + sizeof(ElfW(Nhdr));
      const char* desc = name + ((note->n_namesz + 3) & ~3u);
      const char* next = desc + ((note->n_descsz + 3) & ~3u);
      if (next > end) break;
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
        std::string id;
        char byte[3];
        for (uint32_t k = 0; k < note->n_descsz; ++k) {
          snprintf(byte, sizeof byte, "%02x", static_cast<unsigned char>(desc[k]));
          id += byte;
        }
        return id;
      }
      at = next;
    }
  }
  return "";
}

struct ModuleList {
  JsonWriter* out;
  std::string exe;
};

int write_module(dl_phdr_info* info, size_t, void* data) {
  auto* list = static_cast<ModuleList*>(data);
  const bool main_program = info->dlpi_name == nullptr || info->dlpi_name[0] == '\0';
  const std::string path = main_program ? list->exe : std::string(info->dlpi_name);
  if (path.empty() || path.rfind("linux-vdso", 0) == 0) return 0;
  bool any = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    if (!any) {
      list->out->begin_object()
          .field("path", path)
          .field("load_bias", hex(info->dlpi_addr))
          .field("build_id", build_id_of(info))
          .key("segments").begin_array();
      any = true;
    }
    list->out->begin_object()
        .field("start", hex(info->dlpi_addr + ph.p_vaddr))
        .field("end", hex(info->dlpi_addr + ph.p_vaddr + ph.p_memsz))
        .field("file_offset", uint64_t(ph.p_offset))
        .end_object();
  }
  if (any) list->out->end_array().end_object();
  return 0;
}

}  // namespace

void StackTable::write_json(JsonWriter& out, uint64_t limit) {
  const char* names[] = {"off", "dwarf", "fp"};
  const uint32_t taken = checkpoints_taken_;
  const uint32_t kept = std::min(taken, kCheckpoints);
  const uint32_t oldest = taken - kept;
  std::vector<uint32_t> ids;
  for (uint32_t i = 1; i < kStackCapacity; ++i)
    if (entries_[i].state.load(std::memory_order_acquire) == 2 && entries_[i].alloc_bytes.load() != 0) ids.push_back(i);
  if (limit != 0 && ids.size() > limit * 2) {
    // The top `limit` by live bytes, and the top `limit` of the rest by
    // growth since the oldest checkpoint.
    auto live = [this](uint32_t id) { return entries_[id].live_bytes.load(std::memory_order_relaxed); };
    std::partial_sort(ids.begin(), ids.begin() + limit, ids.end(), [&](uint32_t a, uint32_t b) { return live(a) > live(b); });
    if (kept > 0) {
      const uint32_t first = oldest % kCheckpoints;
      auto grown = [&](uint32_t id) { return live(id) - entries_[id].live_at[first]; };
      std::partial_sort(ids.begin() + limit, ids.begin() + 2 * limit, ids.end(),
                        [&](uint32_t a, uint32_t b) { return grown(a) > grown(b); });
    }
    ids.resize(limit * 2);
    // And every stack a spawn site's memory is broken down by (tasks.sites[].stacks).
    for (const SitePair& p : site_pairs_) {
      const uint64_t key = p.key.load(std::memory_order_acquire);
      const uint32_t id = uint32_t(key & 0xFFFFFFFF);
      if (key != 0 && p.live_bytes.load(std::memory_order_relaxed) > 0 && std::find(ids.begin(), ids.end(), id) == ids.end())
        ids.push_back(id);
    }
  }
  out.begin_object()
      .field("unwinder", names[uint32_t(unwinder_)])
      .field("interval_bytes", interval_)
      .field("max_depth", uint64_t(kMaxStackDepth))
      .field("capacity", uint64_t(kStackCapacity - 1))
      .field("used", uint64_t(used_.load()))
      .field("dropped", dropped_.load())
      .field("site_pairs_dropped", site_dropped_.load());
  out.key("checkpoint_ms").begin_array();
  for (uint32_t k = oldest; k < taken; ++k) out.value(checkpoint_ms_[k % kCheckpoints]);
  out.end_array();
  out.key("entries").begin_array();
  for (uint32_t id : ids) {
    const StackEntry& e = entries_[id];
    out.begin_object()
        .field("id", uint64_t(id))
        .field("alloc_blocks", double(e.alloc_blocks_milli.load()) / 1000.0)
        .field("alloc_bytes", e.alloc_bytes.load())
        .field("live_blocks", double(std::max<int64_t>(0, e.live_blocks_milli.load())) / 1000.0)
        .field("live_bytes", std::max<int64_t>(0, e.live_bytes.load()));
    out.key("live_at").begin_array();
    for (uint32_t k = oldest; k < taken; ++k) out.value(std::max<int64_t>(0, e.live_at[k % kCheckpoints]));
    out.end_array();
    out.key("frames").begin_array();
    for (uint32_t f = 0; f < e.depth; ++f) out.value(hex(e.frames[f]));
    out.end_array().end_object();
  }
  out.end_array();
  out.key("modules").begin_array();
  ModuleList list{&out, self_exe()};
  dl_iterate_phdr(write_module, &list);
  out.end_array().end_object();
}

}  // namespace leakscope
