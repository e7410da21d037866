#include "runtime_bridge.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "../core/json.h"
#include "../core/tasks.h"

namespace leakscope {

namespace {

uint64_t wall_now_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count());
}

double elapsed_ms(uint64_t since_ns) { return double((mono_ns() - since_ns) / 1000) / 1000.0; }

// Every JS thread's bridge. Never destroyed: a worker may tear down after
// the process's static destructors ran.
struct Bridges {
  std::mutex lock;  // guards the fields below
  std::shared_ptr<RuntimeBridge> main;
  const AgentLink* link = nullptr;
  std::vector<std::shared_ptr<RuntimeBridge>> workers;
  RuntimeExtension extension{};
  std::atomic<int> clients{0};
  std::atomic<bool> main_dormant{false};
};

Bridges& bridges() {
  static Bridges* all = new Bridges();
  return *all;
}

}  // namespace

RuntimeBridge::RuntimeBridge(Napi::Env env, Napi::Function collect, Napi::Function clients, uint64_t answer_timeout_ms)
    : answer_timeout_ms_(answer_timeout_ms) {
  calls_ = Napi::ThreadSafeFunction::New(env, collect, "leakscope bridge", 0, 1);
  clients_ = Napi::Persistent(clients);
  // The agent must never keep a program (or a worker) alive that would otherwise exit.
  calls_.Unref(env);
}

bool RuntimeBridge::main_link(AgentLink* link) {
  Bridges& all = bridges();
  std::lock_guard<std::mutex> hold(all.lock);
  if (!all.main) return false;
  *link = *all.link;
  return true;
}

void RuntimeBridge::open_main(const std::shared_ptr<RuntimeBridge>& bridge, const AgentLink& link) {
  Bridges& all = bridges();
  {
    std::lock_guard<std::mutex> hold(all.lock);
    all.main = bridge;
    all.link = &link;
    all.extension = RuntimeExtension{"node", &RuntimeBridge::write_extension, &RuntimeBridge::client_extension, nullptr};
  }
  // Outside the lock: the server thread takes it inside the extension.
  link.set_extension(&all.extension);
}

bool RuntimeBridge::open_worker(const std::shared_ptr<RuntimeBridge>& bridge, Worker worker) {
  Bridges& all = bridges();
  std::lock_guard<std::mutex> hold(all.lock);
  if (!all.main) return false;
  bridge->worker_ = worker;
  all.workers.push_back(bridge);
  return true;
}

int RuntimeBridge::clients_attached() { return bridges().clients.load(); }
void RuntimeBridge::set_main_dormant(bool dormant) { bridges().main_dormant.store(dormant); }
bool RuntimeBridge::main_dormant() { return bridges().main_dormant.load(); }

void RuntimeBridge::close() {
  {
    std::lock_guard<std::mutex> hold(lock_);
    if (closed_) return;
    closed_ = true;
    if (waiting_) {
      std::lock_guard<std::mutex> hold_pending(waiting_->lock);
      waiting_->answered.notify_all();
    }
  }
  Bridges& all = bridges();
  const AgentLink* link = nullptr;
  {
    std::lock_guard<std::mutex> hold(all.lock);
    if (all.main.get() == this) link = all.link;
    all.workers.erase(std::remove_if(all.workers.begin(), all.workers.end(), [this](const auto& w) { return w.get() == this; }),
                      all.workers.end());
  }
  if (link) {
    link->set_extension(nullptr);  // returns once no server call is inside the extension
    std::lock_guard<std::mutex> hold(all.lock);
    all.main.reset();
    all.link = nullptr;
  }
  calls_.Release();
  clients_.Reset();  // on the JS thread, where references may be deleted
}

void RuntimeBridge::write_extension(void*, std::string* json) {
  Bridges& all = bridges();
  std::shared_ptr<RuntimeBridge> main;
  std::vector<std::shared_ptr<RuntimeBridge>> workers;
  {
    std::lock_guard<std::mutex> hold(all.lock);
    main = all.main;
    workers = all.workers;
  }
  if (!main) {
    *json = "null";
    return;
  }
  // Every loop is asked at once; each has until the same deadline.
  const uint64_t asked = mono_ns();
  const uint64_t deadline = asked + main->answer_timeout_ms_ * 1000000ull;
  const std::shared_ptr<Pending> main_pending = main->ask(asked);
  std::vector<std::shared_ptr<Pending>> worker_pending;
  for (const auto& worker : workers) worker_pending.push_back(worker->ask(asked));
  JsonWriter out;
  out.begin_object();
  main->answer(main_pending, asked, deadline, out);
  out.key("workers").begin_array();
  for (size_t i = 0; i < workers.size(); ++i) {
    RuntimeBridge& worker = *workers[i];
    out.begin_object().field("thread_id", worker.worker_.thread_id).field("tid", worker.worker_.tid);
    worker.answer(worker_pending[i], asked, deadline, out);
    out.end_object();
  }
  out.end_array().end_object();
  *json = out.str();
}

void RuntimeBridge::client_extension(void*, bool attached) {
  Bridges& all = bridges();
  std::vector<std::shared_ptr<RuntimeBridge>> every;
  {
    std::lock_guard<std::mutex> hold(all.lock);
    all.clients.fetch_add(attached ? 1 : -1);
    if (all.main) every.push_back(all.main);
    every.insert(every.end(), all.workers.begin(), all.workers.end());
  }
  for (const auto& bridge : every) bridge->client(attached);
}

std::shared_ptr<RuntimeBridge::Pending> RuntimeBridge::ask(uint64_t asked_ns) {
  auto pending = std::make_shared<Pending>();
  std::lock_guard<std::mutex> hold(lock_);
  if (closed_) return nullptr;
  auto* call = new CollectCall{pending, asked_ns};
  const napi_status queued = calls_.NonBlockingCall(call, [](Napi::Env env, Napi::Function collect, CollectCall* call) {
    // Runs on the bridge's JS thread.
    std::unique_ptr<CollectCall> owned(call);
    if (env == nullptr) return;  // torn down before it ran
    std::string answer;
    try {
      Napi::Value result = collect.Call({Napi::Number::New(env, elapsed_ms(call->asked_ns))});
      if (result.IsString()) answer = result.As<Napi::String>().Utf8Value();
    } catch (const Napi::Error& error) {
      answer.clear();  // a failing collect must not reach the program: report nothing
    }
    std::lock_guard<std::mutex> hold(call->pending->lock);
    call->pending->json = std::move(answer);
    call->pending->done = true;
    call->pending->answered.notify_all();
  });
  if (queued != napi_ok) {
    delete call;
    return nullptr;
  }
  waiting_ = pending;
  return pending;
}

void RuntimeBridge::answer(const std::shared_ptr<Pending>& pending, uint64_t asked_ns, uint64_t deadline_ns, JsonWriter& out) {
  bool answered = false;
  std::string answer;
  if (pending) {
    std::unique_lock<std::mutex> hold(pending->lock);
    const uint64_t now = mono_ns();
    const auto left = std::chrono::nanoseconds(deadline_ns > now ? deadline_ns - now : 0);
    // close() notifies under this lock after setting closed_.
    pending->answered.wait_for(hold, left, [&] { return pending->done || closed_; });
    answered = pending->done && !pending->json.empty();
    answer = pending->json;
  }
  out.field("responsive", answered).field("waited_ms", elapsed_ms(asked_ns));
  std::lock_guard<std::mutex> hold(lock_);
  if (waiting_ == pending) waiting_.reset();
  if (answered) {
    last_json_ = answer;
    last_answer_ms_ = wall_now_ms();
    out.field("answered_ms", last_answer_ms_).key("bridge").raw(answer);
  } else if (!last_json_.empty()) {
    out.field("answered_ms", last_answer_ms_).key("bridge").raw(last_json_);
  } else {
    out.key("answered_ms").null().key("bridge").null();
  }
}

void RuntimeBridge::client(bool attached) {
  std::lock_guard<std::mutex> hold(lock_);
  if (closed_) return;
  auto* call = new bool(attached);
  std::weak_ptr<RuntimeBridge> weak = weak_from_this();
  const napi_status queued = calls_.NonBlockingCall(call, [weak](Napi::Env env, Napi::Function, bool* attached) {
    std::unique_ptr<bool> owned(attached);
    const std::shared_ptr<RuntimeBridge> self = weak.lock();
    if (env == nullptr || !self || self->clients_.IsEmpty()) return;
    try {
      self->clients_.Value().Call({Napi::Boolean::New(env, *attached)});
    } catch (const Napi::Error&) {
    }
  });
  if (queued != napi_ok) delete call;
}

}  // namespace leakscope
