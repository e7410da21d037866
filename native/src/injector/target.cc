#include "target.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

namespace leakscope::injector {

namespace {

std::string pid_text(pid_t pid) { return "pid " + std::to_string(pid); }

std::string status_field(const std::string& status, const char* name) {
  const std::string key = std::string("\n") + name + ":";
  const size_t at = status.find(key);
  if (at == std::string::npos) return "";
  size_t start = at + key.size();
  while (start < status.size() && (status[start] == ' ' || status[start] == '\t')) ++start;
  const size_t end = status.find('\n', start);
  return status.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

bool have_cap_sys_ptrace() {
  std::string status;
  if (!read_file("/proc/self/status", &status)) return geteuid() == 0;
  const std::string eff = status_field(status, "CapEff");
  if (eff.empty()) return geteuid() == 0;
  return (strtoull(eff.c_str(), nullptr, 16) >> 19) & 1;  // CAP_SYS_PTRACE
}

int ptrace_scope() {
  std::string text;
  if (!read_file("/proc/sys/kernel/yama/ptrace_scope", &text)) return 0;  // no Yama: classic rules
  return atoi(text.c_str());
}

std::string comm_of(pid_t pid) {
  std::string name;
  if (!read_file("/proc/" + std::to_string(pid) + "/comm", &name)) return "?";
  while (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

// The ELF header of the executable, read through /proc (its mount namespace).
bool exe_header(pid_t pid, Elf64_Ehdr* header) {
  const int fd = open(("/proc/" + std::to_string(pid) + "/exe").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = pread(fd, header, sizeof *header, 0) >= EI_NIDENT + 4;
  close(fd);
  return ok && memcmp(header->e_ident, ELFMAG, SELFMAG) == 0;
}

// Syscalls that no lock of the loader, malloc or pthread_create is held
// across: the calls a thread waits in when it has nothing to do.
bool idle_syscall(long nr, std::string* name) {
  struct Named {
    long nr;
    const char* name;
  };
  static const Named kIdle[] = {
      {SYS_epoll_wait, "epoll_wait"}, {SYS_epoll_pwait, "epoll_pwait"}, {441, "epoll_pwait2"},
      {SYS_poll, "poll"},             {SYS_ppoll, "ppoll"},             {SYS_select, "select"},
      {SYS_pselect6, "pselect6"},     {SYS_nanosleep, "nanosleep"},     {SYS_clock_nanosleep, "clock_nanosleep"},
      {SYS_pause, "pause"},           {SYS_rt_sigsuspend, "rt_sigsuspend"}, {SYS_rt_sigtimedwait, "rt_sigtimedwait"},
      {SYS_wait4, "wait4"},           {SYS_waitid, "waitid"},           {SYS_accept, "accept"},
      {SYS_accept4, "accept4"},       {SYS_recvfrom, "recvfrom"},       {SYS_recvmsg, "recvmsg"},
      {SYS_io_getevents, "io_getevents"}, {426, "io_uring_enter"},
      // The continuation of an interrupted nanosleep, poll or futex wait.
      {SYS_restart_syscall, "restart_syscall"},
  };
  for (const Named& n : kIdle)
    if (n.nr == nr) {
      *name = n.name;
      return true;
    }
  return false;
}

// read(2) is idle only on a socket, pipe or terminal: the loader reads
// library files with it while holding its lock.
bool idle_read(pid_t pid, long fd) {
  char link[256];
  const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  const ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
  if (n <= 0) return false;
  link[n] = '\0';
  return strncmp(link, "socket:", 7) == 0 || strncmp(link, "pipe:", 5) == 0 || strncmp(link, "/dev/pts/", 9) == 0 ||
         strncmp(link, "anon_inode:", 11) == 0;
}

struct ElfSymbols {
  std::vector<char> image;
  const Elf64_Sym* symbols = nullptr;
  const uint16_t* versions = nullptr;
  size_t count = 0;
  const char* strings = nullptr;
  size_t strings_size = 0;
  uint64_t first_load_vaddr = 0;
};

bool load_dynsym(const std::string& path, ElfSymbols* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->image.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  const std::vector<char>& img = out->image;
  if (img.size() < sizeof(Elf64_Ehdr)) return false;
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(img.data());
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) return false;
  if (eh->e_shoff == 0 || eh->e_shoff + uint64_t(eh->e_shnum) * sizeof(Elf64_Shdr) > img.size()) return false;
  if (eh->e_phoff + uint64_t(eh->e_phnum) * sizeof(Elf64_Phdr) > img.size()) return false;
  const auto* ph = reinterpret_cast<const Elf64_Phdr*>(img.data() + eh->e_phoff);
  bool found_load = false;
  for (int i = 0; i < eh->e_phnum; ++i)
    if (ph[i].p_type == PT_LOAD && !found_load) {
      out->first_load_vaddr = ph[i].p_vaddr & ~uint64_t(ph[i].p_align ? ph[i].p_align - 1 : 0);
      found_load = true;
    }
  const auto* sh = reinterpret_cast<const Elf64_Shdr*>(img.data() + eh->e_shoff);
  for (int i = 0; i < eh->e_shnum; ++i) {
    if (sh[i].sh_offset + sh[i].sh_size > img.size()) continue;
    if (sh[i].sh_type == SHT_DYNSYM && sh[i].sh_link < eh->e_shnum) {
      out->symbols = reinterpret_cast<const Elf64_Sym*>(img.data() + sh[i].sh_offset);
      out->count = sh[i].sh_size / sizeof(Elf64_Sym);
      const Elf64_Shdr& strtab = sh[sh[i].sh_link];
      if (strtab.sh_offset + strtab.sh_size > img.size()) return false;
      out->strings = img.data() + strtab.sh_offset;
      out->strings_size = strtab.sh_size;
    }
    if (sh[i].sh_type == SHT_GNU_versym) out->versions = reinterpret_cast<const uint16_t*>(img.data() + sh[i].sh_offset);
  }
  return out->symbols != nullptr && found_load;
}

// The default version of a defined function `name` (not a hidden compat one).
uint64_t symbol_value(const ElfSymbols& elf, const char* name) {
  uint64_t fallback = 0;
  for (size_t i = 1; i < elf.count; ++i) {
    const Elf64_Sym& s = elf.symbols[i];
    if (s.st_shndx == SHN_UNDEF || s.st_value == 0 || ELF64_ST_TYPE(s.st_info) != STT_FUNC) continue;
    if (s.st_name >= elf.strings_size || strcmp(elf.strings + s.st_name, name) != 0) continue;
    if (elf.versions == nullptr || (elf.versions[i] & 0x8000) == 0) return s.st_value;
    fallback = s.st_value;
  }
  return fallback;
}

// A defined function's [start, end) in the file, or {0, 0}.
std::pair<uint64_t, uint64_t> symbol_range(const ElfSymbols& elf, const char* name) {
  for (size_t i = 1; i < elf.count; ++i) {
    const Elf64_Sym& s = elf.symbols[i];
    if (s.st_shndx == SHN_UNDEF || s.st_value == 0 || ELF64_ST_TYPE(s.st_info) != STT_FUNC) continue;
    if (s.st_name < elf.strings_size && strcmp(elf.strings + s.st_name, name) == 0) return {s.st_value, s.st_value + s.st_size};
  }
  return {0, 0};
}

// The C library's functions that take locks pthread_create also takes
// (malloc's arenas, the loader's lists, the thread stack cache, the default
// thread attributes) and may wait while holding them.
const char* const kLockingFunctions[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "memalign", "aligned_alloc", "valloc",
    "pvalloc", "malloc_trim", "malloc_stats", "malloc_info", "mallinfo", "mallinfo2", "mallopt", "fork", "_Fork",
    "vfork", "dlopen", "dlmopen", "dlclose", "dlsym", "dlvsym", "dladdr", "dladdr1", "dlinfo", "dl_iterate_phdr",
    "pthread_create", "pthread_join", "pthread_tryjoin_np", "pthread_timedjoin_np", "pthread_clockjoin_np",
    "pthread_detach", "pthread_exit", "pthread_getattr_default_np", "pthread_setattr_default_np", "exit",
    "__cxa_finalize", "__cxa_thread_atexit_impl", "setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid",
    "setresuid", "setresgid", "setgroups"};

bool is_libc(const std::string& path) {
  const std::string base = base_name(path);
  return base == "libc.so.6" || (base.rfind("libc-2.", 0) == 0 && base.find(".so") != std::string::npos);
}

// A file mapped read-only for as long as it lives (an executable may be
// hundreds of MiB: only the pages read are read).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st {};
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
      void* at = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (at != MAP_FAILED) {
        data_ = static_cast<const char*>(at);
        size_ = size_t(st.st_size);
      }
    }
    close(fd);
  }
  ~MappedFile() {
    if (data_ != nullptr) munmap(const_cast<char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace

std::string base_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool runtime_library(const std::string& path) {
  const std::string base = base_name(path);
  for (const char* prefix : {"libc.so", "libc-", "ld-linux", "libpthread", "libdl", "libstdc++", "libgcc_s", "libjemalloc",
                             "libmimalloc", "libtcmalloc", "libleakscope"})
    if (base.rfind(prefix, 0) == 0) return true;
  return false;
}

std::string linked_allocator(pid_t pid) {
  const MappedFile image("/proc/" + std::to_string(pid) + "/exe");
  if (image.data() == nullptr || image.size() < sizeof(Elf64_Ehdr)) return "";
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(image.data());
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shoff == 0 ||
      eh->e_shoff + uint64_t(eh->e_shnum) * sizeof(Elf64_Shdr) > image.size())
    return "";
  // An allocator linked in statically (its malloc, or its own entry points
  // by name), or a Rust #[global_allocator]: __rust_alloc without the
  // default __rdl_alloc behind it. The program calls these directly, never
  // through the GOT.
  static const char* const kPrefixes[] = {"mi_malloc", "_mi_malloc", "je_malloc", "_rjem_je_malloc", "tc_malloc", "rpmalloc", "snmalloc"};
  bool rust_alloc = false, rust_default = false;
  const auto* sh = reinterpret_cast<const Elf64_Shdr*>(image.data() + eh->e_shoff);
  for (int i = 0; i < eh->e_shnum; ++i) {
    if ((sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) || sh[i].sh_link >= eh->e_shnum) continue;
    const Elf64_Shdr& strtab = sh[sh[i].sh_link];
    if (sh[i].sh_offset + sh[i].sh_size > image.size() || strtab.sh_offset + strtab.sh_size > image.size()) continue;
    const auto* symbols = reinterpret_cast<const Elf64_Sym*>(image.data() + sh[i].sh_offset);
    const char* strings = image.data() + strtab.sh_offset;
    for (size_t k = 1; k < sh[i].sh_size / sizeof(Elf64_Sym); ++k) {
      const Elf64_Sym& s = symbols[k];
      if (s.st_shndx == SHN_UNDEF || ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_name >= strtab.sh_size) continue;
      const char* name = strings + s.st_name;
      if (strcmp(name, "malloc") == 0) return name;
      for (const char* prefix : kPrefixes)
        if (strncmp(name, prefix, strlen(prefix)) == 0) return prefix;
      if (strstr(name, "__rdl_alloc") != nullptr) rust_default = true;
      else if (strstr(name, "__rust_alloc") != nullptr && strstr(name, "__rust_alloc_") == nullptr) rust_alloc = true;
    }
  }
  return rust_alloc && !rust_default ? "#[global_allocator]" : "";
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return !in.bad();
}

std::vector<Mapping> read_maps(pid_t pid) {
  std::vector<Mapping> maps;
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(in, line)) {
    Mapping m;
    char perms[8] = {0};
    unsigned long start, end, offset;
    int path_at = 0;
    if (sscanf(line.c_str(), "%lx-%lx %7s %lx %*s %*s %n", &start, &end, perms, &offset, &path_at) < 4) continue;
    m.start = start;
    m.end = end;
    m.offset = offset;
    m.perms = perms;
    if (path_at > 0 && size_t(path_at) < line.size()) m.path = line.substr(size_t(path_at));
    maps.push_back(m);
  }
  return maps;
}

bool preflight(pid_t pid, Refusal* why) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::string status;
  if (!read_file(proc + "/status", &status)) {
    *why = {"no-process", "no process with " + pid_text(pid) + " (it may have exited)"};
    return false;
  }
  // A kernel thread (PF_KTHREAD in /proc/PID/stat's flags) has no user memory.
  std::string stat;
  if (read_file(proc + "/stat", &stat)) {
    const size_t paren = stat.rfind(')');
    unsigned long flags = 0;
    if (paren != std::string::npos && sscanf(stat.c_str() + paren + 2, "%*c %*d %*d %*d %*d %*d %lu", &flags) == 1 && (flags & 0x00200000)) {
      *why = {"kernel-thread", pid_text(pid) + " is a kernel thread (" + comm_of(pid) + "): it has no user memory to inspect"};
      return false;
    }
  }
  const std::string state = status_field(status, "State");
  if (!state.empty() && state[0] == 'Z') {
    *why = {"exited", pid_text(pid) + " is a zombie: it has exited and waits for its parent"};
    return false;
  }
  if (!state.empty() && state[0] == 'T') {
    *why = {"stopped", pid_text(pid) + " is stopped (SIGSTOP or job control): the agent cannot start in a stopped process; continue it with `kill -CONT " +
                           std::to_string(pid) + "` and attach again"};
    return false;
  }
  const pid_t tracer = pid_t(atoi(status_field(status, "TracerPid").c_str()));
  if (tracer != 0) {
    *why = {"traced", pid_text(pid) + " is already traced by pid " + std::to_string(tracer) + " (" + comm_of(tracer) +
                          "); a process has one tracer at a time: detach the debugger and attach again"};
    return false;
  }
  const std::string uids = status_field(status, "Uid");
  const uid_t uid = uid_t(strtoul(uids.c_str(), nullptr, 10));
  if (geteuid() != 0 && !have_cap_sys_ptrace() && uid != geteuid()) {
    *why = {"other-user", pid_text(pid) + " belongs to uid " + std::to_string(uid) + ": run leakscope as that user or as root"};
    return false;
  }
  const int scope = ptrace_scope();
  if (scope >= 3) {
    *why = {"ptrace-scope", "ptrace is disabled on this machine (kernel.yama.ptrace_scope=3, which only a reboot lifts): start the program with `leakscope run`"};
    return false;
  }
  if (scope == 2 && !have_cap_sys_ptrace()) {
    *why = {"ptrace-scope", "kernel.yama.ptrace_scope=2 lets only CAP_SYS_PTRACE trace: run leakscope as root"};
    return false;
  }
  if (scope == 1 && !have_cap_sys_ptrace()) {
    *why = {"ptrace-scope", "kernel.yama.ptrace_scope=1 lets a process be traced only by its parent: run leakscope as root (or with CAP_SYS_PTRACE), or `sysctl kernel.yama.ptrace_scope=0`"};
    return false;
  }
  if (status_field(status, "Seccomp") == "1") {
    *why = {"seccomp", pid_text(pid) + " runs under strict seccomp (it may make no system call but read, write and exit): nothing can be loaded into it"};
    return false;
  }
  Elf64_Ehdr header{};
  if (!exe_header(pid, &header)) {
    if (errno == EACCES || errno == EPERM) {
      *why = {"permission", "permission denied opening /proc/" + std::to_string(pid) + "/exe: run leakscope as the process's user or as root"};
      return false;
    }
    *why = {"no-executable", "cannot read the executable of " + pid_text(pid) + " (a kernel thread has none)"};
    return false;
  }
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_machine != EM_X86_64) {
    *why = {"architecture", pid_text(pid) + " is a " + std::string(header.e_ident[EI_CLASS] == ELFCLASS32 ? "32-bit" : "non-x86-64") +
                                " process: leakscope loads its agent into x86-64 processes only; use the /proc view"};
    return false;
  }
  const std::vector<Mapping> maps = read_maps(pid);
  if (maps.empty()) {
    *why = {"permission", "permission denied reading /proc/" + std::to_string(pid) + "/maps: run leakscope as the process's user or as root"};
    return false;
  }
  bool libc = false, loader = false, musl = false;
  for (const Mapping& m : maps) {
    const std::string base = base_name(m.path);
    if (is_libc(m.path)) libc = true;
    if (base.rfind("ld-linux", 0) == 0) loader = true;
    if (base.rfind("ld-musl", 0) == 0 || base.rfind("libc.musl", 0) == 0) musl = true;
  }
  if (musl) {
    *why = {"musl", pid_text(pid) + " runs on musl libc: leakscope loads its agent into glibc processes only; link the crate or start it under glibc with `leakscope run`"};
    return false;
  }
  if (!libc || !loader) {
    *why = {"static", pid_text(pid) + " is statically linked (no dynamic loader to load the agent with): link leakscope's crate (Rust) or build it dynamically"};
    return false;
  }
  return true;
}

Refusal seize_refusal(pid_t pid, int error) {
  if (error == ESRCH) return {"no-process", "no process with " + pid_text(pid) + " (it may have exited)"};
  if (error == EPERM || error == EACCES) {
    std::string status;
    read_file("/proc/" + std::to_string(pid) + "/status", &status);
    const pid_t tracer = pid_t(atoi(status_field(status, "TracerPid").c_str()));
    if (tracer != 0)
      return {"traced", pid_text(pid) + " is already traced by pid " + std::to_string(tracer) + " (" + comm_of(tracer) + "): detach it and attach again"};
    if (!have_cap_sys_ptrace())
      return {"permission", "ptrace of " + pid_text(pid) + " was refused: run leakscope as the process's user or as root (CAP_SYS_PTRACE)"};
    if (status_field(status, "NoNewPrivs") == "1" || status_field(status, "Seccomp") == "2")
      return {"seccomp", "ptrace of " + pid_text(pid) + " was refused though leakscope has CAP_SYS_PTRACE; the process runs under seccomp/no_new_privs, or a security module (AppArmor, SELinux) forbids tracing it"};
    return {"permission", "ptrace of " + pid_text(pid) + " was refused though leakscope has CAP_SYS_PTRACE: a security module (AppArmor, SELinux) or the container's seccomp profile forbids it"};
  }
  return {"ptrace", std::string("ptrace of ") + pid_text(pid) + " failed: " + strerror(error)};
}

bool find_libc_functions(pid_t pid, const std::vector<Mapping>& maps, LibcFunctions* out, Refusal* why) {
  const Mapping* base = nullptr;
  const Mapping* text = nullptr;
  for (const Mapping& m : maps) {
    if (!is_libc(m.path)) continue;
    if (base == nullptr && m.offset == 0) base = &m;
    if (text == nullptr && m.perms.find('x') != std::string::npos) text = &m;
  }
  if (base == nullptr || text == nullptr) {
    *why = {"no-libc", "cannot find the C library in the memory map of " + pid_text(pid)};
    return false;
  }
  out->path = base->path;
  // Read through the target's root: the same file even in another mount namespace.
  ElfSymbols elf;
  const std::string root_path = "/proc/" + std::to_string(pid) + "/root" + base->path;
  char range[64];
  snprintf(range, sizeof range, "%lx-%lx", static_cast<unsigned long>(base->start), static_cast<unsigned long>(base->end));
  if (!load_dynsym(root_path, &elf) && !load_dynsym("/proc/" + std::to_string(pid) + "/map_files/" + range, &elf)) {
    *why = {"no-libc", "cannot read the C library of " + pid_text(pid) + " (" + base->path + ")"};
    return false;
  }
  const uintptr_t load = base->start - elf.first_load_vaddr;
  struct Wanted {
    const char* name;
    uintptr_t* slot;
  } wanted[] = {{"dlopen", &out->dlopen},
                {"dlsym", &out->dlsym},
                {"dlerror", &out->dlerror},
                {"pthread_create", &out->pthread_create},
                {"pthread_detach", &out->pthread_detach},
                {"close", &out->close}};
  for (const Wanted& w : wanted) {
    const uint64_t value = symbol_value(elf, w.name);
    if (value == 0) {
      *why = {"old-glibc", pid_text(pid) + "'s C library (" + base->path + ") does not define " + w.name +
                               " (glibc older than 2.34 keeps it in libdl/libpthread): start the program with `leakscope run`"};
      return false;
    }
    *w.slot = load + value;
  }
  for (const char* name : kLockingFunctions) {
    const auto [start, end] = symbol_range(elf, name);
    if (start != 0 && end > start) out->lock_holders.push_back({load + start, load + end, name});
  }
  // The loader's and the allocator libraries' code, whole.
  for (const Mapping& m : maps) {
    if (m.perms.find('x') == std::string::npos) continue;
    const std::string base = base_name(m.path);
    for (const char* prefix : {"ld-linux", "libjemalloc", "libmimalloc", "libtcmalloc"})
      if (base.rfind(prefix, 0) == 0) out->lock_holders.push_back({m.start, m.end, base});
  }
  std::sort(out->lock_holders.begin(), out->lock_holders.end(),
            [](const CodeRange& a, const CodeRange& b) { return a.start < b.start; });
  // A `syscall` instruction (0f 05) in libc's text, for the borrowed thread's
  // own system calls when it was stopped outside one.
  const int mem = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (mem >= 0) {
    std::vector<unsigned char> bytes(std::min<uintptr_t>(text->end - text->start, 1 << 20));
    const ssize_t n = pread(mem, bytes.data(), bytes.size(), off_t(text->start));
    for (ssize_t i = 0; i + 1 < n; ++i)
      if (bytes[size_t(i)] == 0x0f && bytes[size_t(i) + 1] == 0x05) {
        out->syscall_insn = text->start + uintptr_t(i);
        break;
      }
    close(mem);
  }
  return true;
}

std::string loaded_library(const std::vector<Mapping>& maps, const std::string& base) {
  for (const Mapping& m : maps)
    if (base_name(m.path) == base) return m.path;
  return "";
}

int syscall_rank(pid_t pid, long nr, long arg0, std::string* name) {
  if (idle_syscall(nr, name)) return 0;
  if (nr == SYS_read && idle_read(pid, arg0)) {
    *name = "read";
    return 0;
  }
  if (nr == SYS_futex) {
    *name = "futex";
    return 1;
  }
  *name = "syscall " + std::to_string(nr);
  return 2;
}

std::vector<Candidate> thread_candidates(pid_t pid) {
  std::vector<Candidate> out;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return out;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    Candidate c;
    c.tid = pid_t(atoi(entry->d_name));
    std::string comm;
    read_file(tasks + "/" + entry->d_name + "/comm", &comm);
    if (comm.rfind("leakscope-", 0) == 0) continue;  // the agent's own threads
    std::string syscall_text;
    c.rank = 2;
    c.where = "running";
    if (read_file(tasks + "/" + entry->d_name + "/syscall", &syscall_text)) {
      long nr = -1, arg0 = 0;
      if (syscall_text.rfind("running", 0) != 0 && sscanf(syscall_text.c_str(), "%ld %lx", &nr, &arg0) >= 1 && nr >= 0)
        c.rank = syscall_rank(pid, nr, arg0, &c.where);
    }
    out.push_back(c);
  }
  closedir(dir);
  // A test knob: treat every thread as busy, so that the path that stops a
  // running thread in safe code is the one taken.
  if (const char* prefer = getenv("LEAKSCOPE_INJECT_PREFER"); prefer != nullptr && strcmp(prefer, "busy") == 0)
    for (Candidate& c : out) {
      c.rank = 2;
      c.where = "running";
    }
  // Best first; among equals the main thread last (it may be the one the
  // user watches), then the lowest tid.
  std::stable_sort(out.begin(), out.end(), [pid](const Candidate& a, const Candidate& b) {
    if (a.rank != b.rank) return a.rank < b.rank;
    if ((a.tid == pid) != (b.tid == pid)) return b.tid == pid;
    return a.tid < b.tid;
  });
  return out;
}

bool process_gone(pid_t pid) {
  std::string stat;
  if (!read_file("/proc/" + std::to_string(pid) + "/stat", &stat) || stat.empty()) return true;
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  const char state = stat[paren + 2];
  return state == 'Z' || state == 'X';
}

bool other_mount_namespace(pid_t pid) {
  struct stat ours {}, theirs {};
  if (stat("/proc/self/ns/mnt", &ours) != 0) return false;
  if (stat(("/proc/" + std::to_string(pid) + "/ns/mnt").c_str(), &theirs) != 0) return false;
  return ours.st_ino != theirs.st_ino || ours.st_dev != theirs.st_dev;
}

}  // namespace leakscope::injector
