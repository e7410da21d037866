// The agent's clocks for task times: CLOCK_MONOTONIC, its coarse variant,
// and the poll clock (the TSC scaled to CLOCK_MONOTONIC where the kernel
// keeps time by the TSC).
#pragma once

#include <cstdint>

namespace leakscope {

// CLOCK_MONOTONIC.
uint64_t mono_ns();
// CLOCK_MONOTONIC's nanoseconds for poll times, from the TSC where the
// kernel keeps time by it (clock.cc); calibrate_poll_clock runs on the
// sampler thread each tick and measures the TSC's rate.
uint64_t poll_ns();
void calibrate_poll_clock();
const char* poll_clock_name();  // "tsc" once measured, else "monotonic"
// CLOCK_MONOTONIC_COARSE (a few ms of resolution, a fifth of the cost on a KVM guest), for
// spawn, wake and completion times, which only make ages.
uint64_t coarse_ns();

}  // namespace leakscope
