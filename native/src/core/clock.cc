// The agent's clocks for task times (clock.h).
#include "clock.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace leakscope {

uint64_t coarse_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no syscall
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// The poll clock. Two reads per poll made CLOCK_MONOTONIC (23 ns a read on
// a KVM guest) the largest single cost of tracking a busy Tokio service.
// Where the kernel keeps time by the TSC itself (clocksource "tsc": a
// constant rate, the same on every CPU), a poll reads the TSC instead
// (under 10 ns) and scales it to CLOCK_MONOTONIC's nanoseconds with the
// scale the sampler thread measures every second. Until the first
// measurement, and on other machines, it is CLOCK_MONOTONIC.
namespace {

#if defined(__x86_64__)
struct alignas(64) TscScale {
  std::atomic<uint32_t> sequence{0};  // odd while the sampler writes
  std::atomic<uint64_t> tsc{0};       // a TSC reading ...
  std::atomic<uint64_t> ns{0};        // ... and CLOCK_MONOTONIC then
  std::atomic<uint64_t> ns_per_tick_q32{0};  // 0 until measured
};
TscScale g_tsc_scale;

struct TscPoint {
  uint64_t tsc = 0, ns = 0;
};

// CLOCK_MONOTONIC between two TSC reads, the tightest of a few tries.
TscPoint tsc_point() {
  TscPoint best;
  uint64_t best_gap = ~uint64_t(0);
  for (int i = 0; i < 5; ++i) {
    const uint64_t before = __rdtsc();
    const uint64_t ns = mono_ns();
    const uint64_t after = __rdtsc();
    if (after >= before && after - before < best_gap) {
      best_gap = after - before;
      best = TscPoint{before + (after - before) / 2, ns};
    }
  }
  return best;
}

bool kernel_keeps_time_by_tsc() {
  const int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char name[16] = {};
  const ssize_t got = read(fd, name, sizeof(name) - 1);
  close(fd);
  return got >= 3 && name[0] == 't' && name[1] == 's' && name[2] == 'c' && (got == 3 || name[3] == '\n');
}
#endif

}  // namespace

uint64_t poll_ns() {
#if defined(__x86_64__)
  for (;;) {
    const uint32_t sequence = g_tsc_scale.sequence.load(std::memory_order_acquire);
    const uint64_t scale = g_tsc_scale.ns_per_tick_q32.load(std::memory_order_relaxed);
    const uint64_t base_tsc = g_tsc_scale.tsc.load(std::memory_order_relaxed);
    const uint64_t base_ns = g_tsc_scale.ns.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if ((sequence & 1) != 0 || g_tsc_scale.sequence.load(std::memory_order_relaxed) != sequence) continue;
    if (scale == 0) return mono_ns();
    const uint64_t tsc = __rdtsc();
    if (tsc <= base_tsc) return base_ns;
    return base_ns + uint64_t((static_cast<unsigned __int128>(tsc - base_tsc) * scale) >> 32);
  }
#else
  return mono_ns();
#endif
}

const char* poll_clock_name() {
#if defined(__x86_64__)
  if (g_tsc_scale.ns_per_tick_q32.load(std::memory_order_relaxed) != 0) return "tsc";
#endif
  return "monotonic";
}

void calibrate_poll_clock() {
#if defined(__x86_64__)
  static TscPoint last;  // the sampler thread's alone
  const uint32_t sequence = g_tsc_scale.sequence.load(std::memory_order_relaxed);
  const auto publish = [&](const TscPoint& base, uint64_t scale) {
    g_tsc_scale.sequence.store(sequence + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    g_tsc_scale.tsc.store(base.tsc, std::memory_order_relaxed);
    g_tsc_scale.ns.store(base.ns, std::memory_order_relaxed);
    g_tsc_scale.ns_per_tick_q32.store(scale, std::memory_order_relaxed);
    g_tsc_scale.sequence.store(sequence + 2, std::memory_order_release);
  };
  // Asked every tick: the kernel drops the TSC if it finds it unstable.
  if (!kernel_keeps_time_by_tsc()) {
    if (g_tsc_scale.ns_per_tick_q32.load(std::memory_order_relaxed) != 0) publish(TscPoint{}, 0);
    last = TscPoint{};
    return;
  }
  const TscPoint now = tsc_point();
  // At least 100 ms apart, so that the reads' own jitter is below 1e-6.
  if (last.tsc != 0 && now.tsc > last.tsc && now.ns >= last.ns + 100000000)
    publish(now, uint64_t((static_cast<unsigned __int128>(now.ns - last.ns) << 32) / (now.tsc - last.tsc)));
  if (last.tsc == 0 || now.ns >= last.ns + 100000000) last = now;
#endif
}

}  // namespace leakscope
