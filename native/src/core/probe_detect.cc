#include <dlfcn.h>

#include <cstring>

#include "probes.h"

namespace leakscope {

namespace {

class UnknownProbe : public AllocatorProbe {
 public:
  UnknownProbe(std::string name, std::string object) : name_(std::move(name)), object_(std::move(object)) {}
  const char* name() const override { return name_.c_str(); }
  std::string version() const override { return ""; }
  void write_stats(JsonWriter& out) override { out.field("object", object_); }
  const char* reclaim_action() const override { return "none"; }
  bool reclaim() override { return false; }

 private:
  std::string name_, object_;
};

}  // namespace

std::unique_ptr<AllocatorProbe> make_unknown_probe(const std::string& name, const std::string& object) {
  return std::make_unique<UnknownProbe>(name, object);
}

std::unique_ptr<AllocatorProbe> detect_allocator(void* forwarded_malloc) {
  Dl_info info{};
  std::string object;
  if (forwarded_malloc != nullptr && dladdr(forwarded_malloc, &info) != 0 && info.dli_fname != nullptr)
    object = info.dli_fname;
  const char* base = strrchr(object.c_str(), '/');
  std::string file = base ? base + 1 : object;
  if (file.find("mimalloc") != std::string::npos) return make_mimalloc_probe();
  if (file.find("jemalloc") != std::string::npos) return make_jemalloc_probe();
  if (file.find("tcmalloc") != std::string::npos) return make_unknown_probe("tcmalloc", object);
  if (file.rfind("libc.so", 0) == 0) return make_glibc_probe();
  // malloc defined by the executable or another object: a statically linked
  // allocator announces itself by its control symbols.
  if (dlsym(RTLD_DEFAULT, "mi_version") != nullptr) return make_mimalloc_probe();
  if (dlsym(RTLD_DEFAULT, "mallctl") != nullptr) return make_jemalloc_probe();
  // No allocator of its own: a non-PIE executable's "malloc" is its PLT stub
  // (the symbol's canonical address, dlsym(3)), and the calls land in libc.
  if (void* libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD)) {
    const bool glibc_malloc = dlsym(libc, "malloc_trim") != nullptr;
    dlclose(libc);
    if (glibc_malloc && dlsym(RTLD_DEFAULT, "tc_malloc") == nullptr) return make_glibc_probe();
  }
  return make_unknown_probe("unknown", object);
}

}  // namespace leakscope
