// The N-API surface of leakscope's Node addon (src/node-agent/native.d.cts
// declares it). This file checks arguments, converts and exports; the work
// is in agent_link, runtime_bridge and uv_census.
#include <napi.h>

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <unordered_set>

#include "agent_link.h"
#include "../core/got_hooks.h"
#include "runtime_bridge.h"
#include "uv_census.h"

using namespace leakscope;

namespace {

struct AddonState {
  AgentLink link;
  std::shared_ptr<RuntimeBridge> bridge;
  bool main = false;  // this thread opened the agent link
  // A worker's tasks still open: they end with the worker, whose isolate
  // (and every promise and timer in it) goes, however it exits.
  bool worker = false;
  std::unordered_set<uint64_t> open_tasks;
};

AddonState& state_of(const Napi::CallbackInfo& info) { return *info.Env().GetInstanceData<AddonState>(); }

[[noreturn]] void usage(Napi::Env env, const char* text) { throw Napi::TypeError::New(env, std::string("Usage: ") + text); }

uint64_t task_id(const Napi::CallbackInfo& info, const char* text) {
  if (info.Length() < 1 || !info[0].IsNumber()) usage(info.Env(), text);
  const double id = info[0].As<Napi::Number>().DoubleValue();
  return id >= 0 && id < 9007199254740992.0 ? uint64_t(id) : 0;
}

struct StartArgs {
  Napi::Function collect, clients;
  uint64_t answer_timeout_ms;
};

StartArgs start_args(const Napi::CallbackInfo& info, const char* text, size_t extra) {
  if (info.Length() < 3 + extra || !info[0].IsFunction() || !info[1].IsFunction() || !info[2].IsNumber())
    usage(info.Env(), text);
  const double timeout = info[2].As<Napi::Number>().DoubleValue();
  return {info[0].As<Napi::Function>(), info[1].As<Napi::Function>(), uint64_t(timeout > 0 ? timeout : 0)};
}

Napi::Object started(Napi::Env env, const AgentLink& link) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("mode", link.mode);
  result.Set("guest", link.guest);
  result.Set("clients", RuntimeBridge::clients_attached());
  result.Set("dormant", RuntimeBridge::main_dormant());
  return result;
}

// setDormant(dormant), main thread: workers that start now start the same way.
Napi::Value SetDormant(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsBoolean()) usage(info.Env(), "setDormant(dormant: boolean)");
  RuntimeBridge::set_main_dormant(info[0].As<Napi::Boolean>().Value());
  return info.Env().Undefined();
}

// start(collect: (delayMs) => string, clients: (attached) => void, answerTimeoutMs), main thread
Napi::Value Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const StartArgs args = start_args(info, "start(collect: function, clients: function, answerTimeoutMs: number)", 0);
  AddonState& state = state_of(info);
  AgentLink open;
  if (state.bridge || RuntimeBridge::main_link(&open)) throw Napi::Error::New(env, "leakscope: the agent is started already");
  std::string error;
  if (!open_agent_link(&state.link, &error)) throw Napi::Error::New(env, "leakscope: " + error);
  state.main = true;
  state.bridge = std::make_shared<RuntimeBridge>(env, args.collect, args.clients, args.answer_timeout_ms);
  RuntimeBridge::open_main(state.bridge, state.link);
  return started(env, state.link);
}

// join(collect, clients, answerTimeoutMs, threadId), a worker thread: joins
// the agent the main thread started.
Napi::Value Join(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* text = "join(collect: function, clients: function, answerTimeoutMs: number, threadId: number)";
  const StartArgs args = start_args(info, text, 1);
  if (!info[3].IsNumber()) usage(env, text);
  AddonState& state = state_of(info);
  if (state.bridge) throw Napi::Error::New(env, "leakscope: the agent is joined already");
  if (!RuntimeBridge::main_link(&state.link))
    throw Napi::Error::New(env, "leakscope: the main thread has no agent yet (attach it first)");
  auto bridge = std::make_shared<RuntimeBridge>(env, args.collect, args.clients, args.answer_timeout_ms);
  const RuntimeBridge::Worker worker{info[3].As<Napi::Number>().Int64Value(), int(syscall(SYS_gettid))};
  if (!RuntimeBridge::open_worker(bridge, worker)) {
    bridge->close();
    throw Napi::Error::New(env, "leakscope: the main thread's agent has closed");
  }
  state.bridge = bridge;
  state.worker = true;
  return started(env, state.link);
}

// spawn(kind, name | null, site, parentId, waiting, weightLog2) → id (0: not tracked)
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* text = "spawn(kind: string, name: string | null, site: string, parentId: number, waiting: boolean, weightLog2: number)";
  if (info.Length() < 6 || !info[0].IsString() || !(info[1].IsString() || info[1].IsNull()) || !info[2].IsString() ||
      !info[3].IsNumber() || !info[4].IsBoolean() || !info[5].IsNumber())
    usage(env, text);
  AddonState& state = state_of(info);
  if (!state.link.spawn) return Napi::Number::New(env, 0);
  const std::string kind = info[0].As<Napi::String>().Utf8Value();
  const std::string name = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : std::string();
  const std::string site = info[2].As<Napi::String>().Utf8Value();
  const double parent = info[3].As<Napi::Number>().DoubleValue();
  const double weight = info[5].As<Napi::Number>().DoubleValue();
  const uint64_t id = state.link.spawn(kind.c_str(), name.empty() ? nullptr : name.c_str(), site.c_str(),
                                       parent > 0 ? uint64_t(parent) : 0, info[4].As<Napi::Boolean>().Value() ? 1 : 0,
                                       weight > 0 && weight < 32 ? uint32_t(weight) : 0);
  if (state.worker && id != 0) state.open_tasks.insert(id);
  return Napi::Number::New(env, double(id));
}

Napi::Value PollBegin(const Napi::CallbackInfo& info) {
  const uint64_t id = task_id(info, "pollBegin(id: number)");
  if (state_of(info).link.poll_begin) state_of(info).link.poll_begin(id);
  return info.Env().Undefined();
}

Napi::Value PollEnd(const Napi::CallbackInfo& info) {
  const uint64_t id = task_id(info, "pollEnd(id: number)");
  if (state_of(info).link.poll_end) state_of(info).link.poll_end(id);
  return info.Env().Undefined();
}

Napi::Value Complete(const Napi::CallbackInfo& info) {
  const uint64_t id = task_id(info, "complete(id: number)");
  AddonState& state = state_of(info);
  if (state.link.complete) state.link.complete(id);
  if (state.worker) state.open_tasks.erase(id);
  return info.Env().Undefined();
}

// uvHandles() → { [type]: { total, active, referenced } } of this thread's loop
Napi::Value UvHandles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uv_loop_s* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "leakscope: no event loop");
  Napi::Object result = Napi::Object::New(env);
  for (const auto& [type, count] : count_handles(loop)) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("total", count.total);
    entry.Set("active", count.active);
    entry.Set("referenced", count.referenced);
    result.Set(type, entry);
  }
  return result;
}

// threadpoolTids(threads, timeoutMs) → tids of libuv's threadpool (uv_census.h)
Napi::Value ThreadpoolTids(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) usage(env, "threadpoolTids(threads: number, timeoutMs: number)");
  uv_loop_s* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "leakscope: no event loop");
  const int threads = std::clamp(info[0].As<Napi::Number>().Int32Value(), 0, 1024);
  const int timeout = std::clamp(info[1].As<Napi::Number>().Int32Value(), 0, 1000);
  const std::vector<int> tids = threadpool_tids(loop, threads, timeout);
  Napi::Array result = Napi::Array::New(env, tids.size());
  for (uint32_t i = 0; i < tids.size(); ++i) result.Set(i, tids[i]);
  return result;
}

// gauges(idleThresholdMs) → the agent's gauges as JSON (agent.h, agent_copy_gauges)
Napi::Value Gauges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) usage(env, "gauges(idleThresholdMs: number)");
  AddonState& state = state_of(info);
  if (!state.link.gauges) return env.Null();
  const double threshold = info[0].As<Napi::Number>().DoubleValue();
  std::string json(4096, '\0');
  for (int attempt = 0; attempt < 3; ++attempt) {  // tasks of a new kind may lengthen it between calls
    const size_t length = state.link.gauges(threshold > 0 ? uint64_t(threshold) : 0, json.data(), json.size());
    if (length <= json.size()) {
      json.resize(length);
      return Napi::String::New(env, json);
    }
    json.resize(length + 1024);
  }
  throw Napi::Error::New(env, "leakscope: the agent's gauges kept growing");
}

// heapHooks(on) → { objects, entries } hooked (on), or undefined (off).
// Only for an agent of the addon's own: a preloaded one hooks everything.
Napi::Value HeapHooks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) usage(env, "heapHooks(on: boolean)");
  AddonState& state = state_of(info);
  if (!state.main || state.link.guest) throw Napi::Error::New(env, "leakscope: heap hooks are for the main thread's own agent");
  if (!info[0].As<Napi::Boolean>().Value()) {
    remove_got_hooks();
    return env.Undefined();
  }
  GotHookStats stats;
  std::string error;
  if (!install_got_hooks(&stats, &error)) throw Napi::Error::New(env, "leakscope: " + error);
  Napi::Object result = Napi::Object::New(env);
  result.Set("objects", double(stats.objects));
  result.Set("entries", double(stats.entries));
  return result;
}

// The calling thread's CPU time in ms: what a piece of JavaScript cost the
// program, without the time the thread was preempted (wall-clock timing
// counts that, and a loaded machine preempts often).
Napi::Value ThreadCpuMs(const Napi::CallbackInfo& info) {
  timespec now{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now) != 0) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), double(now.tv_sec) * 1e3 + double(now.tv_nsec) / 1e6);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* state = new AddonState();
  env.SetInstanceData<AddonState>(state);
  // Runs on the JS main thread at teardown, before the instance data goes.
  napi_add_env_cleanup_hook(
      env,
      [](void* arg) {
        auto* state = static_cast<AddonState*>(arg);
        if (state->bridge) state->bridge->close();
        if (state->link.complete)
          for (const uint64_t id : state->open_tasks) state->link.complete(id);
        state->open_tasks.clear();
        if (state->main) close_agent_link(state->link);
      },
      state);
  exports.Set("start", Napi::Function::New(env, Start, "start"));
  exports.Set("join", Napi::Function::New(env, Join, "join"));
  exports.Set("heapHooks", Napi::Function::New(env, HeapHooks, "heapHooks"));
  exports.Set("setDormant", Napi::Function::New(env, SetDormant, "setDormant"));
  exports.Set("spawn", Napi::Function::New(env, Spawn, "spawn"));
  exports.Set("pollBegin", Napi::Function::New(env, PollBegin, "pollBegin"));
  exports.Set("pollEnd", Napi::Function::New(env, PollEnd, "pollEnd"));
  exports.Set("complete", Napi::Function::New(env, Complete, "complete"));
  exports.Set("uvHandles", Napi::Function::New(env, UvHandles, "uvHandles"));
  exports.Set("gauges", Napi::Function::New(env, Gauges, "gauges"));
  exports.Set("threadpoolTids", Napi::Function::New(env, ThreadpoolTids, "threadpoolTids"));
  exports.Set("threadCpuMs", Napi::Function::New(env, ThreadCpuMs, "threadCpuMs"));
  return exports;
}

}  // namespace

NODE_API_MODULE(leakscope, Init)
