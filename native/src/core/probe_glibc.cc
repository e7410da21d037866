// glibc malloc: mallinfo2 totals and malloc_info's per-arena XML, verbatim
// (the CLI parses it). Reclaim is malloc_trim(0), which since glibc 2.8 also
// returns whole free pages inside every arena (MADV_DONTNEED), not only the
// top of the main heap; glibc's counters do not move when it does.
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <malloc.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "probes.h"

namespace leakscope {

namespace {

struct Mallinfo2 {
  size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

class GlibcProbe : public AllocatorProbe {
 public:
  // Runs on the program's thread that starts the agent. malloc_info writes
  // to a FILE; one made here, unbuffered, over a buffer of the agent's own,
  // takes no allocation when the agent's server thread uses it: a stream
  // opened there (open_memstream) would be the C library's malloc on that
  // thread, which gives it a glibc arena of its own (agent_heap.h).
  GlibcProbe() {
    mallinfo2_ = reinterpret_cast<Mallinfo2 (*)()>(dlsym(RTLD_DEFAULT, "mallinfo2"));
    malloc_info_ = reinterpret_cast<int (*)(int, FILE*)>(dlsym(RTLD_DEFAULT, "malloc_info"));
    malloc_trim_ = reinterpret_cast<int (*)(size_t)>(dlsym(RTLD_DEFAULT, "malloc_trim"));
    void* buffer = mmap(nullptr, kXmlBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (buffer != MAP_FAILED) {
      xml_ = static_cast<char*>(buffer);
      stream_ = fmemopen(xml_, kXmlBytes, "w");
      if (stream_ != nullptr) setvbuf(stream_, nullptr, _IONBF, 0);
    }
  }
  const char* name() const override { return "glibc"; }
  std::string version() const override { return gnu_get_libc_version(); }

  void write_stats(JsonWriter& out) override {
    if (mallinfo2_ != nullptr) {
      const Mallinfo2 mi = mallinfo2_();
      out.key("mallinfo2").begin_object()
          .field("arena_bytes", uint64_t(mi.arena))
          .field("mmap_bytes", uint64_t(mi.hblkhd))
          .field("mmap_count", uint64_t(mi.hblks))
          .field("in_use_bytes", uint64_t(mi.uordblks))
          .field("free_bytes", uint64_t(mi.fordblks))
          .field("free_chunks", uint64_t(mi.ordblks))
          .field("fastbin_free_bytes", uint64_t(mi.fsmblks))
          .field("top_releasable_bytes", uint64_t(mi.keepcost))
          .end_object();
    }
    if (malloc_info_ != nullptr && stream_ != nullptr) {
      std::lock_guard<std::mutex> hold(stream_lock_);
      clearerr(stream_);
      fseek(stream_, 0, SEEK_SET);
      malloc_info_(0, stream_);
      fflush(stream_);
      const long length = ftell(stream_);
      // A full buffer cuts the XML short: the CLI then finds no arenas in it.
      if (length > 0 && size_t(length) < kXmlBytes) out.field("malloc_info_xml", std::string(xml_, size_t(length)));
    }
  }

  const char* reclaim_action() const override { return "malloc_trim(0)"; }
  bool reclaim() override {
    if (malloc_trim_ == nullptr) return false;
    malloc_trim_(0);
    return true;
  }

 private:
  static constexpr size_t kXmlBytes = 4 << 20;  // address space; a few KiB per arena are touched
  char* xml_ = nullptr;
  FILE* stream_ = nullptr;
  std::mutex stream_lock_;
  Mallinfo2 (*mallinfo2_)() = nullptr;
  int (*malloc_info_)(int, FILE*) = nullptr;
  int (*malloc_trim_)(size_t) = nullptr;
};

}  // namespace

std::unique_ptr<AllocatorProbe> make_glibc_probe() { return std::make_unique<GlibcProbe>(); }

}  // namespace leakscope
