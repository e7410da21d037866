// The Node side of the runtime extension: the agent's server thread asks the
// JS bridges for their part of a snapshot through thread-safe functions and
// waits a bounded time; a loop too busy to answer is reported with its last
// answer and marked stale. Clients coming and going reach the bridges the
// same way, without waiting.
//
// One bridge per JS thread: the main thread's holds the agent's extension
// ("node"); each worker thread's joins it, and the main one's answer carries
// theirs under "workers". The addon's code is shared by every thread, so the
// set of bridges is process-wide.
#pragma once

#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "agent_link.h"

namespace leakscope {

class JsonWriter;

class RuntimeBridge : public std::enable_shared_from_this<RuntimeBridge> {
 public:
  // A worker thread's: its `threadId` and kernel tid.
  struct Worker {
    int64_t thread_id = 0;
    int tid = 0;
  };

  // Runs on the bridge's JS thread. `collect()` returns the bridge's part as
  // a JSON string; `clients(attached)` hears of clients.
  RuntimeBridge(Napi::Env env, Napi::Function collect, Napi::Function clients, uint64_t answer_timeout_ms);

  // The main thread's bridge is open: true and its agent link in `link`
  // (for a worker to join the same agent).
  static bool main_link(AgentLink* link);
  // Runs on the main JS thread: the bridge answers for the process.
  // `link` lives until close().
  static void open_main(const std::shared_ptr<RuntimeBridge>& bridge, const AgentLink& link);
  // Runs on a worker's JS thread. False when no main bridge is open (attach
  // the main thread first).
  static bool open_worker(const std::shared_ptr<RuntimeBridge>& bridge, Worker worker);
  // Clients now attached to the agent, as the main bridge last heard.
  static int clients_attached();
  // The main thread's bridge went dormant (hooks out until a client comes)
  // or woke: a worker that starts meanwhile starts the same way.
  static void set_main_dormant(bool dormant);
  static bool main_dormant();

  // Runs on the bridge's JS thread (environment teardown): no server call
  // waits for this bridge any more, and it leaves the set (the main one
  // removes the extension).
  void close();

 private:
  struct Pending {
    std::mutex lock;
    std::condition_variable answered;
    bool done = false;
    std::string json;
  };
  struct CollectCall {
    std::shared_ptr<Pending> pending;
    uint64_t asked_ns;
  };

  static void write_extension(void* context, std::string* json);
  static void client_extension(void* context, bool attached);
  // Server thread: queues a collect on the JS thread; null when closed or
  // the queue refused it.
  std::shared_ptr<Pending> ask(uint64_t asked_ns);
  // Server thread: waits for `pending` until `deadline_ns`, then writes
  // responsive, waited_ms, answered_ms and bridge (the last answer when
  // this one did not come) into the open object `out`.
  void answer(const std::shared_ptr<Pending>& pending, uint64_t asked_ns, uint64_t deadline_ns, JsonWriter& out);
  void client(bool attached);

  // One queue for both kinds of call, so that the JS thread sees them in the
  // order the server sent them (a client's arrival before its snapshot).
  Napi::ThreadSafeFunction calls_;  // its function is `collect`
  Napi::FunctionReference clients_;  // JS thread only; reset by close()
  uint64_t answer_timeout_ms_;
  Worker worker_{};
  std::mutex lock_;            // guards the fields below and the functions' use
  std::atomic<bool> closed_{false};  // set under lock_; read by waits too
  std::string last_json_;      // the last answer, for when the loop is busy
  uint64_t last_answer_ms_ = 0;
  std::shared_ptr<Pending> waiting_;  // the call the server thread waits for
};

}  // namespace leakscope
