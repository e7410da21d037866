// The agent's server: one Unix socket per process in a per-user 0700
// directory, newline-delimited JSON requests and replies (docs/protocol.md),
// one client at a time. Runs on its own thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "agent.h"
#include "json.h"

namespace leakscope {

class Sampler;
struct TaskQuery;
class AllocatorProbe;
struct AgentConfig;

class Server {
 public:
  Server(const AgentConfig& config, Sampler& sampler, AllocatorProbe& probe, uint64_t started_ms);
  // Creates the directory and the socket; false (and `error`) when the
  // directory is not ours alone or the socket cannot be bound.
  bool listen(std::string* error);
  // Runs on the server thread until the process exits.
  void serve();
  // Any thread: the socket file goes away (process exit); fds are closed in
  // a forked child so that the parent keeps its clients.
  void remove_socket_file();
  void close_in_child();
  // Any thread (agent_set_extension).
  void set_extension(const RuntimeExtension* extension);

  static constexpr int kProtocolVersion = 1;
  static constexpr size_t kMaxRequestBytes = 64 * 1024;
  /** A client that takes none of its reply for this long is let go. */
  static constexpr uint64_t kStallMs = 5000;

 private:
  void accept_client();
  void read_client();
  bool client_hung_up() const;
  void drop_client();
  void handle_line(const std::string& line);
  void write_hello(JsonWriter& out);
  void write_snapshot(JsonWriter& out, const TaskQuery& query);
  void write_tasks(JsonWriter& out, const TaskQuery& query);
  void write_reclaim(JsonWriter& out);
  bool send_line(int fd, const std::string& line);
  bool reply(const std::string& line);
  bool flush_client();
  void handle_pending();

  const AgentConfig& config_;
  Sampler& sampler_;
  AllocatorProbe& probe_;
  uint64_t started_ms_;
  std::string path_;
  std::atomic<int> listen_fd_{-1};
  std::atomic<int> client_fd_{-1};
  int client_pid_ = 0;
  int owner_pid_ = 0;
  std::string pending_;
  std::string outbox_;  // the client's reply, as far as it has not taken it
  size_t outbox_sent_ = 0;
  uint64_t outbox_progress_ns_ = 0;
  // Held while the server thread calls into the extension, so that removing
  // it waits for that call to return.
  std::mutex extension_lock_;
  RuntimeExtension extension_{};
  bool has_extension_ = false;
  bool client_told_ = false;  // the extension heard of the current client
};

// /tmp/leakscope-<uid>, or LEAKSCOPE_SOCKET_DIR.
std::string socket_directory(const AgentConfig& config);

}  // namespace leakscope
