#include "server.h"


#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <initializer_list>

#include "agent.h"
#include "clock.h"
#include "ledger.h"
#include "probes.h"
#include "proc.h"
#include "stacks.h"
#include "sampler.h"
#include "tasks.h"

namespace leakscope {

std::string socket_directory(const AgentConfig& config) {
  if (!config.socket_dir.empty()) return config.socket_dir;
  return "/tmp/leakscope-" + std::to_string(geteuid());
}

Server::Server(const AgentConfig& config, Sampler& sampler, AllocatorProbe& probe, uint64_t started_ms)
    : config_(config), sampler_(sampler), probe_(probe), started_ms_(started_ms), owner_pid_(getpid()) {}

bool Server::listen(std::string* error) {
  std::string dir = socket_directory(config_);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    // A read-only or missing /tmp (a hardened container): /dev/shm, where the
    // CLI looks next, unless a directory was asked for.
    const std::string fallback = "/dev/shm/leakscope-" + std::to_string(geteuid());
    if (!config_.socket_dir.empty() || (mkdir(fallback.c_str(), 0700) != 0 && errno != EEXIST)) {
      *error = "cannot create " + dir + ": " + strerror(errno);
      return false;
    }
    dir = fallback;
  }
  // Another user could have made the directory first and wait for our
  // socket in it: use it only if it is ours and private.
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
    *error = dir + " is not a directory private to uid " + std::to_string(geteuid());
    return false;
  }
  path_ = dir + "/" + std::to_string(getpid()) + ".sock";
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path_.size() >= sizeof address.sun_path) {
    *error = "socket path too long: " + path_;
    return false;
  }
  memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + strerror(errno);
    return false;
  }
  unlink(path_.c_str());  // a stale file of an earlier process with our pid
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || chmod(path_.c_str(), 0600) != 0 ||
      ::listen(fd, 8) != 0) {
    *error = "cannot listen on " + path_ + ": " + strerror(errno);
    close(fd);
    return false;
  }
  listen_fd_.store(fd);
  return true;
}

void Server::remove_socket_file() {
  if (!path_.empty() && getpid() == owner_pid_) unlink(path_.c_str());
}

void Server::set_extension(const RuntimeExtension* extension) {
  std::lock_guard<std::mutex> hold(extension_lock_);
  has_extension_ = extension != nullptr;
  extension_ = has_extension_ ? *extension : RuntimeExtension{};
  // A client attached already counts as arriving now.
  client_told_ = has_extension_ && client_fd_.load() >= 0;
  if (client_told_ && extension_.client) extension_.client(extension_.context, true);
}

void Server::close_in_child() {
  const int client = client_fd_.exchange(-1);
  if (client >= 0) close(client);
  const int listener = listen_fd_.exchange(-1);
  if (listener >= 0) close(listener);
}

// Runs on the server thread. Replies go out without blocking: a client that
// stops reading holds only its own reply (no further request of its is read
// until that is out), and is let go once it has taken nothing for
// kStallMs; meanwhile new clients are still answered (busy).
void Server::serve() {
  while (true) {
    const int listener = listen_fd_.load();
    if (listener < 0) return;
    const int client = client_fd_.load();
    const bool sending = client >= 0 && !outbox_.empty();
    pollfd fds[2] = {{listener, POLLIN, 0}, {client, short(sending ? POLLOUT : POLLIN), 0}};
    const int n = poll(fds, client >= 0 ? 2 : 1, sending ? 250 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    // The client first: one that hung up is let go before a new one asks.
    if (client >= 0 && fds[1].revents) {
      if (!sending) read_client();
      else if (!flush_client()) drop_client();
      else if (outbox_.empty()) handle_pending();
    }
    if (client_fd_.load() >= 0 && !outbox_.empty() && (mono_ns() - outbox_progress_ns_) / 1000000 > kStallMs) drop_client();
    if (fds[0].revents & POLLIN) accept_client();
  }
}

bool Server::send_line(int fd, const std::string& line) {
  // To a socket just accepted, one short line: its buffer takes it whole.
  std::string framed = line + "\n";
  size_t sent = 0;
  while (sent < framed.size()) {
    // MSG_NOSIGNAL: a client that went away must not SIGPIPE the target.
    const ssize_t n = send(fd, framed.data() + sent, framed.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += size_t(n);
  }
  return true;
}

bool Server::reply(const std::string& line) {
  outbox_.append(line).push_back('\n');
  outbox_progress_ns_ = mono_ns();
  return flush_client();
}

bool Server::flush_client() {
  const int fd = client_fd_.load();
  while (outbox_sent_ < outbox_.size()) {
    const ssize_t n = send(fd, outbox_.data() + outbox_sent_, outbox_.size() - outbox_sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // the rest when it reads
    if (n <= 0) return false;
    outbox_sent_ += size_t(n);
    outbox_progress_ns_ = mono_ns();
  }
  outbox_.clear();
  outbox_.shrink_to_fit();  // a large reply's buffer is not kept between replies
  outbox_sent_ = 0;
  return true;
}

namespace {

bool one_of(const std::string& value, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (value == a) return true;
  return false;
}

// The task part of a snapshot request (docs/protocol.md); false with a
// reason when a field is out of range.
bool task_query_from(const Request& request, TaskQuery* query, std::string* problem) {
  auto number = [&](const char* name, uint64_t* to, uint64_t max) {
    auto it = request.numbers.find(name);
    if (it == request.numbers.end()) return true;
    if (!(it->second >= 0) || it->second > double(max) || it->second != std::floor(it->second)) {
      *problem = std::string(name) + " must be a whole number from 0 to " + std::to_string(max);
      return false;
    }
    *to = uint64_t(it->second);
    return true;
  };
  auto text = [&](const char* name, std::string* to) {
    auto it = request.strings.find(name);
    if (it != request.strings.end()) *to = it->second;
  };
  if (!number("idle_threshold_ms", &query->idle_threshold_ms, uint64_t(1) << 40) ||
      !number("tasks_offset", &query->offset, uint64_t(1) << 32) ||
      !number("tasks_limit", &query->limit, 100000) ||
      !number("sites_limit", &query->sites_limit, 100000) ||
      !number("site_history_limit", &query->site_history_limit, 1024) ||
      !number("stacks_limit", &query->stacks_limit, kStackCapacity))
    return false;
  text("tasks_sort", &query->sort);
  text("tasks_state", &query->state);
  text("tasks_filter", &query->filter);
  text("tasks_site", &query->site);
  if (!one_of(query->sort, {"idle", "age", "polls", "busy", "allocated", "live_bytes", "id"})) {
    *problem = "tasks_sort must be one of idle, age, polls, busy, allocated, live_bytes, id";
    return false;
  }
  if (!one_of(query->state, {"live", "all", "idle", "running", "scheduled", "completed"})) {
    *problem = "tasks_state must be one of live, all, idle, running, scheduled, completed";
    return false;
  }
  return true;
}

std::string error_line(double id, const std::string& message) {
  JsonWriter out;
  out.begin_object().field("v", Server::kProtocolVersion);
  if (std::isfinite(id)) out.field("id", id); else out.key("id").null();
  out.field("ok", false).field("error", message).end_object();
  return out.str();
}
}  // namespace

void Server::accept_client() {
  const int fd = accept4(listen_fd_.load(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return;
  ucred peer{};
  socklen_t length = sizeof peer;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
      (peer.uid != geteuid() && peer.uid != 0)) {
    send_line(fd, error_line(NAN, "permission denied: only uid " + std::to_string(geteuid()) + " or root may attach"));
    close(fd);
    return;
  }
  if (client_fd_.load() >= 0 && client_hung_up()) drop_client();
  if (client_fd_.load() >= 0) {
    send_line(fd, error_line(NAN, "busy: another leakscope client (pid " + std::to_string(client_pid_) +
                                      ") is attached to this process; detach it first"));
    close(fd);
    return;
  }
  client_fd_.store(fd);
  client_pid_ = peer.pid;
  pending_.clear();
  outbox_.clear();
  outbox_sent_ = 0;
  // The agent speaks first, so a client learns it was admitted (or why
  // not) before it writes anything.
  JsonWriter greeting;
  greeting.begin_object().field("v", kProtocolVersion).key("id").null().field("ok", true).key("result");
  write_hello(greeting);
  greeting.end_object();
  if (!reply(greeting.str())) {
    drop_client();
    return;
  }
  std::lock_guard<std::mutex> hold(extension_lock_);
  client_told_ = has_extension_;
  if (has_extension_ && extension_.client) extension_.client(extension_.context, true);
}

bool Server::client_hung_up() const {
  // A client that quit a moment ago may not have been read to its end yet.
  // Closed, not half-closed: one that shut its writing side still reads.
  pollfd client{client_fd_.load(), 0, 0};
  return poll(&client, 1, 0) == 1 && (client.revents & (POLLHUP | POLLERR)) != 0;
}

void Server::drop_client() {
  const int fd = client_fd_.exchange(-1);
  if (fd >= 0) close(fd);
  pending_.clear();
  outbox_.clear();
  outbox_.shrink_to_fit();
  outbox_sent_ = 0;
  client_pid_ = 0;
  std::lock_guard<std::mutex> hold(extension_lock_);
  if (client_told_ && has_extension_ && extension_.client) extension_.client(extension_.context, false);
  client_told_ = false;
}

void Server::read_client() {
  char buf[16384];
  const ssize_t n = recv(client_fd_.load(), buf, sizeof buf, 0);
  if (n <= 0) {
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    drop_client();
    return;
  }
  pending_.append(buf, size_t(n));
  handle_pending();
}

// The requests read so far, one at a time, while the last reply is out.
void Server::handle_pending() {
  size_t newline;
  while (client_fd_.load() >= 0 && outbox_.empty() && (newline = pending_.find('\n')) != std::string::npos) {
    const std::string line = pending_.substr(0, newline);
    pending_.erase(0, newline + 1);
    handle_line(line);
  }
  if (client_fd_.load() >= 0 && pending_.size() > kMaxRequestBytes && pending_.find('\n') == std::string::npos) {
    reply(error_line(NAN, "request longer than " + std::to_string(kMaxRequestBytes) + " bytes"));
    drop_client();
  }
}

void Server::handle_line(const std::string& line) {
  Request request;
  std::string error;
  if (!parse_request(line, &request, &error)) {
    if (!reply(error_line(NAN, "malformed request: " + error))) drop_client();
    return;
  }
  const double id = request.numbers.count("id") ? request.numbers["id"] : NAN;
  const double version = request.numbers.count("v") ? request.numbers["v"] : NAN;
  if (version != kProtocolVersion) {
    if (!reply(error_line(id, "unsupported protocol version: this agent speaks v" + std::to_string(kProtocolVersion))))
      drop_client();
    return;
  }
  const std::string op = request.strings.count("op") ? request.strings["op"] : "";
  JsonWriter out;
  out.begin_object().field("v", kProtocolVersion);
  if (std::isfinite(id)) out.field("id", id);
  if (op == "hello") {
    out.field("ok", true).key("result");
    write_hello(out);
  } else if (op == "snapshot" || op == "tasks") {
    TaskQuery query;
    std::string problem;
    if (!task_query_from(request, &query, &problem)) {
      if (!reply(error_line(id, problem))) drop_client();
      return;
    }
    out.field("ok", true).key("result");
    if (op == "snapshot") {
      write_snapshot(out, query);
    } else {
      out.begin_object().field("now_ms", wall_ms()).key("tasks");
      write_tasks(out, query);
      out.end_object();
    }
  } else if (op == "reclaim") {
    out.field("ok", true).key("result");
    write_reclaim(out);
  } else {
    if (!reply(error_line(id, "unknown op '" + op + "' (expected hello, snapshot, tasks or reclaim)"))) drop_client();
    return;
  }
  out.end_object();
  if (!reply(out.str())) drop_client();
}

void Server::write_hello(JsonWriter& out) {
  out.begin_object()
      .field("pid", int64_t(getpid()))
      .field("mode", config_.mode)
      .field("agent_version", kAgentVersion)
      .field("protocol", kProtocolVersion)
      .field("sample_interval_bytes", g_ledger.sample_interval)
      .field("started_ms", started_ms_)
      .end_object();
}

void Server::write_tasks(JsonWriter& out, const TaskQuery& query) {
  g_tasks.write(out, query, [this](uint32_t site, std::vector<uint32_t>* history) {
    sampler_.site_live_history(site, history);
  });
}

void Server::write_snapshot(JsonWriter& out, const TaskQuery& query) {
  const LedgerTotals totals = Sampler::ledger_totals();
  out.begin_object()
      .field("pid", int64_t(getpid()))
      .field("command", self_command_line())
      .field("mode", config_.mode)
      .field("agent_version", kAgentVersion)
      .field("sample_interval_bytes", g_ledger.sample_interval)
      .field("sample_store", config_.sample_store)
      .field("counts", config_.counts)
      .field("dropped_events", g_ledger.dropped_events.load())
      .field("sampled_blocks", totals.sampled_blocks())
      .field("started_ms", started_ms_)
      .field("now_ms", wall_ms());
  out.key("process").begin_object().field("rss_bytes", self_rss_bytes()).end_object();
  out.key("ledger").begin_object()
      .field("counting", g_ledger.scope.load() != kLedgerOff)
      .field("frees_counted", g_ledger.scope.load() == kLedgerAll)
      .field("since_ms", g_ledger.since_ms.load())
      .field("live_bytes", Sampler::live_bytes(totals))
      .field("alloc_count", totals.alloc_count)
      .field("allocated_bytes", totals.alloc_bytes)
      .field("free_count", totals.free_count)
      .field("freed_bytes", totals.free_bytes)
      .field("exited_threads", uint64_t(g_ledger.exited.threads.load()))
      .end_object();
  out.key("allocator").begin_object()
      .field("name", probe_.name())
      .field("version", probe_.version())
      .field("reclaim_action", probe_.reclaim_action());
  probe_.write_stats(out);
  out.end_object();
  out.key("threads");
  sampler_.write_threads(out);
  out.key("history");
  sampler_.write_history(out);
  out.key("tasks");
  write_tasks(out, query);
  {
    std::lock_guard<std::mutex> hold(sampler_.mutex);  // the checkpoints are the sampler's
    out.key("stacks");
    g_stacks.write_json(out, query.stacks_limit);
  }
  {
    std::lock_guard<std::mutex> hold(extension_lock_);
    if (has_extension_ && extension_.write) {
      std::string json;
      extension_.write(extension_.context, &json);
      out.key(extension_.key).raw(json);
    }
  }
  out.end_object();
}

void Server::write_reclaim(JsonWriter& out) {
  const uint64_t before = self_rss_bytes();
  const uint64_t start = wall_ms();
  const bool done = probe_.reclaim();
  const uint64_t after = self_rss_bytes();
  out.begin_object()
      .field("allocator", probe_.name())
      .field("action", probe_.reclaim_action())
      .field("performed", done)
      .field("before_rss_bytes", before)
      .field("after_rss_bytes", after)
      .field("duration_ms", wall_ms() - start)
      .end_object();
}

}  // namespace leakscope
