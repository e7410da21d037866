#include "proc.h"

#include <sys/syscall.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace leakscope {

bool read_text_file(const std::string& path, std::string* out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out->append(buf, size_t(n));
  close(fd);
  return n == 0;
}

uint64_t self_rss_bytes() {
  std::string statm;
  if (!read_text_file("/proc/self/statm", &statm)) return 0;
  unsigned long size = 0, resident = 0;
  if (sscanf(statm.c_str(), "%lu %lu", &size, &resident) != 2) return 0;
  return uint64_t(resident) * uint64_t(sysconf(_SC_PAGESIZE));
}

uint64_t self_anon_bytes() {
  std::string status;
  if (!read_text_file("/proc/self/status", &status)) return 0;
  const size_t at = status.find("RssAnon:");
  unsigned long kib = 0;
  if (at == std::string::npos || sscanf(status.c_str() + at, "RssAnon: %lu kB", &kib) != 1) return 0;
  return uint64_t(kib) * 1024;
}

// Read with getdents64, not opendir: the C library would allocate the
// directory's buffer with its own malloc on the agent's thread, and glibc
// gives a thread that allocates an arena of its own (agent_heap.h).
std::vector<int> self_task_ids() {
  std::vector<int> tids;
  const int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return tids;
  alignas(8) char buffer[16384];
  for (;;) {
    const long n = syscall(SYS_getdents64, fd, buffer, sizeof buffer);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name
      unsigned short reclen;
      memcpy(&reclen, buffer + at + 16, sizeof reclen);
      const int tid = atoi(buffer + at + 19);
      if (tid > 0) tids.push_back(tid);
      at += reclen;
    }
  }
  close(fd);
  return tids;
}

bool task_exists(int tid) { return access(("/proc/self/task/" + std::to_string(tid)).c_str(), F_OK) == 0; }

bool read_task_stat(int tid, TaskStat* out) {
  std::string text;
  if (!read_text_file("/proc/self/task/" + std::to_string(tid) + "/stat", &text)) return false;
  // The name is in parentheses and may itself contain ')' or spaces: the
  // fields after it start after the last ')'. proc(5).
  const size_t open_paren = text.find('(');
  const size_t close_paren = text.rfind(')');
  if (open_paren == std::string::npos || close_paren == std::string::npos || close_paren < open_paren) return false;
  out->name = text.substr(open_paren + 1, close_paren - open_paren - 1);
  const char* rest = text.c_str() + close_paren + 2;
  unsigned long utime = 0, stime = 0;
  // state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
  if (sscanf(rest, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &out->state, &utime, &stime) != 3)
    return false;
  out->cpu_ticks = uint64_t(utime) + uint64_t(stime);
  return true;
}

std::string self_command_line() {
  std::string raw;
  if (!read_text_file("/proc/self/cmdline", &raw)) return "";
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();
  for (char& c : raw)
    if (c == '\0') c = ' ';
  return raw;
}

std::string symbolize(uintptr_t address) {
  if (address == 0) return "";
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(address), &info) == 0) {
    char buf[32];
    snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(address));
    return buf;
  }
  const char* file = info.dli_fname ? info.dli_fname : "?";
  const char* slash = strrchr(file, '/');
  const std::string module = slash ? slash + 1 : file;
  if (info.dli_sname != nullptr && info.dli_saddr == reinterpret_cast<void*>(address))
    return std::string(info.dli_sname) + " (" + module + ")";
  char buf[48];
  snprintf(buf, sizeof buf, "+0x%lx", static_cast<unsigned long>(address - uintptr_t(info.dli_fbase)));
  return module + buf;
}

}  // namespace leakscope
