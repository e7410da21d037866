// leakscope-inject: loads leakscope's agent library into a running native
// process by pid (remote.h says how). The CLI runs it and reads one JSON
// line from its stdout:
//   {"ok":true,"tid":N,"safe_point":"epoll_wait","pause_us":N,"load_ms":N,"entry_result":N,"library":"..."}
//   {"ok":false,"code":"stopped","message":"pid N is stopped ..."}
// Exit status 0 when loaded, 2 when refused or failed (the target runs on).
//
// usage: leakscope-inject PID --library PATH [--options TEXT] [--timeout-ms N]
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "remote.h"
#include "target.h"

using namespace leakscope::injector;

namespace {

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A step that failed because the process died on the way says so, not what
// the step saw (an empty memory map, a /proc file it may no longer open).
int refuse(pid_t pid, Refusal why) {
  if (why.code != "no-process" && why.code != "exited" && process_gone(pid))
    why = {"exited", "pid " + std::to_string(pid) + " exited while the agent was being loaded"};
  printf("{\"ok\":false,\"code\":%s,\"message\":%s}\n", json_string(why.code).c_str(), json_string(why.message).c_str());
  return 2;
}

// A target in another mount namespace cannot see our path: the library is
// copied into its /tmp (through /proc/PID/root) and named as it sees it; where
// that cannot be written (a read-only or missing /tmp), `theirs` stays empty
// and the library goes in a memfd of the target's own (remote.cc).
bool deliver_library(pid_t pid, const std::string& ours, std::string* theirs, std::string* bytes, Refusal* why) {
  if (!other_mount_namespace(pid)) {
    *theirs = ours;
    return true;
  }
  if (!read_file(ours, bytes) || bytes->empty()) {
    *why = {"library", "cannot read " + ours};
    return false;
  }
  const std::string dir = "/tmp/leakscope-inject-" + std::to_string(geteuid());
  const std::string root = "/proc/" + std::to_string(pid) + "/root";
  theirs->clear();
  if (mkdir((root + dir).c_str(), 0755) != 0 && errno != EEXIST) return true;  // the memfd, then
  struct stat st {};
  if (lstat((root + dir).c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
    *why = {"library", dir + " in the mount namespace of pid " + std::to_string(pid) + " is not a directory only uid " +
                           std::to_string(geteuid()) + " may write"};
    return false;
  }
  const std::string file = dir + "/" + base_name(ours);
  const std::string temp = root + file + ".tmp" + std::to_string(getpid());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  const bool written = fd >= 0 && write(fd, bytes->data(), bytes->size()) == ssize_t(bytes->size()) && fchmod(fd, 0644) == 0;
  if (fd >= 0) close(fd);
  if (!written || rename(temp.c_str(), (root + file).c_str()) != 0) {
    unlink(temp.c_str());
    return true;  // the memfd, then
  }
  *theirs = file;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: leakscope-inject PID --library PATH [--options TEXT] [--timeout-ms N]\n");
    return 64;
  }
  const pid_t pid = pid_t(strtol(argv[1], nullptr, 10));
  std::string library, options;
  uint64_t timeout_ms = 5000;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--library") library = argv[i + 1];
    else if (flag == "--options") options = argv[i + 1];
    else if (flag == "--timeout-ms") timeout_ms = strtoull(argv[i + 1], nullptr, 10);
  }
  if (pid <= 0 || library.empty() || library[0] != '/') {
    fprintf(stderr, "usage: leakscope-inject PID --library /ABSOLUTE/PATH [--options TEXT] [--timeout-ms N]\n");
    return 64;
  }
  // Once a thread of the target is ours, nothing may cut the work short but
  // SIGKILL: the registers must go back. (The kernel detaches a tracer that
  // dies; SIGKILL is the one way to leave a borrowed thread mid-stub.)
  sigset_t blocked;
  sigemptyset(&blocked);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM})
    sigaddset(&blocked, sig);
  sigprocmask(SIG_BLOCK, &blocked, nullptr);

  Refusal why;
  if (!preflight(pid, &why)) return refuse(pid, why);
  InjectPlan plan;
  plan.pid = pid;
  plan.entry = "leakscope_inject_attach";
  const std::string linked = linked_allocator(pid);
  plan.options = options + (linked.empty() ? "" : (options.empty() ? "" : ";") + std::string("linked_allocator=") + linked);
  plan.timeout_ms = timeout_ms;
  plan.maps = read_maps(pid);
  if (!loaded_library(plan.maps, "libleakscope.so").empty() || !loaded_library(plan.maps, "libleakscope-exact.so").empty())
    return refuse(pid, {"preloaded", "pid " + std::to_string(pid) +
                                    " was started with leakscope's LD_PRELOAD agent, which does not answer (it exec'd or forked away from it): restart it with `leakscope run`"});
  if (!find_libc_functions(pid, plan.maps, &plan.libc, &why)) return refuse(pid, why);
  if (!loaded_library(plan.maps, "memfd:leakscope-agent (deleted)").empty() || !loaded_library(plan.maps, "memfd:leakscope-agent").empty())
    return refuse(pid, {"loaded", "pid " + std::to_string(pid) + " has leakscope's agent loaded already, but it does not answer (its socket is gone): restart the program to attach again"});
  if (!deliver_library(pid, library, &plan.library, &plan.library_bytes, &why)) return refuse(pid, why);
  InjectOutcome outcome;
  if (!inject_library(plan, [pid] { return thread_candidates(pid); }, &outcome, &why)) return refuse(pid, why);
  if (outcome.entry_result == 2)
    return refuse(pid, {"forked", "pid " + std::to_string(pid) +
                                 " carries the agent of the process it was forked from, which cannot run in a child: attach to the parent, or restart this one"});
  std::string signals = "[";
  for (size_t i = 0; i < outcome.signals.size(); ++i) signals += (i ? "," : "") + std::to_string(outcome.signals[i]);
  signals += "]";
  printf("{\"ok\":true,\"tid\":%d,\"safe_point\":%s,\"pause_us\":%llu,\"load_ms\":%llu,\"entry_result\":%d,\"library\":%s,\"signals\":%s}\n",
         outcome.tid, json_string(outcome.safe_point).c_str(), static_cast<unsigned long long>(outcome.pause_us),
         static_cast<unsigned long long>(outcome.load_ms), outcome.entry_result, json_string(outcome.library).c_str(),
         signals.c_str());
  return 0;
}
