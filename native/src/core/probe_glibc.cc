// glibc malloc: mallinfo2 totals and malloc_info's per-arena XML, verbatim
// (the CLI parses it). Reclaim is malloc_trim(0), which since glibc 2.8 also
// returns whole free pages inside every arena (MADV_DONTNEED), not only the
// top of the main heap; glibc's counters do not move when it does.
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <malloc.h>

#include <cstdio>
#include <cstdlib>

#include "probes.h"

namespace leakscope {

namespace {

struct Mallinfo2 {
  size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

class GlibcProbe : public AllocatorProbe {
 public:
  GlibcProbe() {
    mallinfo2_ = reinterpret_cast<Mallinfo2 (*)()>(dlsym(RTLD_DEFAULT, "mallinfo2"));
    malloc_info_ = reinterpret_cast<int (*)(int, FILE*)>(dlsym(RTLD_DEFAULT, "malloc_info"));
    malloc_trim_ = reinterpret_cast<int (*)(size_t)>(dlsym(RTLD_DEFAULT, "malloc_trim"));
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
    if (malloc_info_ != nullptr) {
      char* text = nullptr;
      size_t length = 0;
      FILE* stream = open_memstream(&text, &length);
      if (stream != nullptr) {
        malloc_info_(0, stream);
        fclose(stream);
        out.field("malloc_info_xml", std::string(text, length));
        free(text);
      }
    }
  }

  const char* reclaim_action() const override { return "malloc_trim(0)"; }
  bool reclaim() override {
    if (malloc_trim_ == nullptr) return false;
    malloc_trim_(0);
    return true;
  }

 private:
  Mallinfo2 (*mallinfo2_)() = nullptr;
  int (*malloc_info_)(int, FILE*) = nullptr;
  int (*malloc_trim_)(size_t) = nullptr;
};

}  // namespace

std::unique_ptr<AllocatorProbe> make_glibc_probe() { return std::make_unique<GlibcProbe>(); }

}  // namespace leakscope
