// Reading this process's own /proc entries. Agent threads only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace leakscope {

struct TaskStat {
  char state = '?';
  std::string name;
  uint64_t cpu_ticks = 0;  // utime + stime
};

bool read_text_file(const std::string& path, std::string* out);
uint64_t self_rss_bytes();
// Resident anonymous bytes (RssAnon in /proc/self/status, Linux 4.5+); 0 when unknown.
uint64_t self_anon_bytes();
std::vector<int> self_task_ids();
bool read_task_stat(int tid, TaskStat* out);
bool task_exists(int tid);
std::string self_command_line();
// "routine (libfoo.so)" from a code address, or "libfoo.so+0x1234".
std::string symbolize(uintptr_t address);

}  // namespace leakscope
