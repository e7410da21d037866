#include "runtime_bridge.h"

#include <chrono>

#include "../core/json.h"
#include "../core/tasks.h"

namespace leakscope {

namespace {
uint64_t wall_now_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count());
}
}  // namespace

RuntimeBridge::RuntimeBridge(Napi::Env env, const AgentLink& link, Napi::Function collect, Napi::Function clients,
                             uint64_t answer_timeout_ms)
    : link_(link), answer_timeout_ms_(answer_timeout_ms) {
  collect_ = Napi::ThreadSafeFunction::New(env, collect, "leakscope collect", 0, 1);
  clients_ = Napi::ThreadSafeFunction::New(env, clients, "leakscope clients", 0, 1);
  // The agent must never keep a program alive that would otherwise exit.
  collect_.Unref(env);
  clients_.Unref(env);
  extension_ = RuntimeExtension{"node", &RuntimeBridge::write_extension, &RuntimeBridge::client_extension, this};
  link_.set_extension(&extension_);
}

void RuntimeBridge::close() {
  {
    std::lock_guard<std::mutex> hold(lock_);
    closed_ = true;
    if (waiting_) {
      std::lock_guard<std::mutex> hold_pending(waiting_->lock);
      waiting_->answered.notify_all();
    }
  }
  link_.set_extension(nullptr);
  collect_.Release();
  clients_.Release();
}

void RuntimeBridge::write_extension(void* context, std::string* json) { static_cast<RuntimeBridge*>(context)->write(json); }
void RuntimeBridge::client_extension(void* context, bool attached) { static_cast<RuntimeBridge*>(context)->client(attached); }

void RuntimeBridge::write(std::string* json) {
  auto pending = std::make_shared<Pending>();
  {
    std::lock_guard<std::mutex> hold(lock_);
    if (closed_) return;
    waiting_ = pending;
  }
  const uint64_t asked = mono_ns();
  auto* call = new CollectCall{pending, asked};
  const napi_status queued = collect_.NonBlockingCall(call, [](Napi::Env env, Napi::Function collect, CollectCall* call) {
    // Runs on the JS main thread.
    std::unique_ptr<CollectCall> owned(call);
    if (env == nullptr) return;  // torn down before it ran
    std::string answer;
    try {
      const double delay_ms = double((mono_ns() - call->asked_ns) / 1000) / 1000.0;
      Napi::Value result = collect.Call({Napi::Number::New(env, delay_ms)});
      if (result.IsString()) answer = result.As<Napi::String>().Utf8Value();
    } catch (const Napi::Error& error) {
      answer.clear();  // a failing collect must not reach the program: report nothing
    }
    std::lock_guard<std::mutex> hold(call->pending->lock);
    call->pending->json = std::move(answer);
    call->pending->done = true;
    call->pending->answered.notify_all();
  });
  if (queued != napi_ok) delete call;
  bool answered = false;
  std::string answer;
  if (queued == napi_ok) {
    std::unique_lock<std::mutex> hold(pending->lock);
    pending->answered.wait_for(hold, std::chrono::milliseconds(answer_timeout_ms_), [&] {
      return pending->done || closed_;
    });
    answered = pending->done && !pending->json.empty();
    answer = pending->json;
  }
  const double waited_ms = double((mono_ns() - asked) / 1000) / 1000.0;
  JsonWriter out;
  out.begin_object().field("responsive", answered).field("waited_ms", waited_ms);
  std::lock_guard<std::mutex> hold(lock_);
  waiting_.reset();
  if (answered) {
    last_json_ = answer;
    last_answer_ms_ = wall_now_ms();
    out.field("answered_ms", last_answer_ms_).key("bridge").raw(answer);
  } else if (!last_json_.empty()) {
    out.field("answered_ms", last_answer_ms_).key("bridge").raw(last_json_);
  } else {
    out.key("answered_ms").null().key("bridge").null();
  }
  out.end_object();
  *json = out.str();
}

void RuntimeBridge::client(bool attached) {
  {
    std::lock_guard<std::mutex> hold(lock_);
    if (closed_) return;
  }
  clients_.NonBlockingCall(new bool(attached), [](Napi::Env env, Napi::Function clients, bool* attached) {
    std::unique_ptr<bool> owned(attached);
    if (env == nullptr) return;
    try {
      clients.Call({Napi::Boolean::New(env, *attached)});
    } catch (const Napi::Error&) {
    }
  });
}

}  // namespace leakscope
