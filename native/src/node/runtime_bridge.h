// The Node side of the runtime extension: the agent's server thread asks the
// JS bridge for its part of a snapshot through a thread-safe function and
// waits a bounded time; when the event loop is too busy to answer it reports
// the last answer and says it is stale. Clients coming and going reach the
// bridge the same way, without waiting.
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

class RuntimeBridge {
 public:
  // Runs on the JS main thread. `collect()` returns the bridge's part as a
  // JSON string; `clients(attached)` hears of clients.
  RuntimeBridge(Napi::Env env, const AgentLink& link, Napi::Function collect, Napi::Function clients,
                uint64_t answer_timeout_ms);
  // Runs on the JS main thread (environment teardown): no server call waits
  // for JS any more, and the extension is removed.
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
  // Runs on the server thread.
  void write(std::string* json);
  void client(bool attached);

  const AgentLink& link_;
  Napi::ThreadSafeFunction collect_;
  Napi::ThreadSafeFunction clients_;
  uint64_t answer_timeout_ms_;
  RuntimeExtension extension_{};
  std::mutex lock_;            // guards the fields below
  std::string last_json_;      // the last answer, for when the loop is busy
  uint64_t last_answer_ms_ = 0;
  std::shared_ptr<Pending> waiting_;  // the call the server thread waits for
  std::atomic<bool> closed_{false};
};

}  // namespace leakscope
