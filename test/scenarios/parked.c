/* A small C runtime whose connection handler spawns a heartbeat task and
 * parks it at spawn: never polled, never completed. Request tasks are
 * spawned, polled and completed as they should be. Through the task ABI
 * (native/include/leakscope.h). Truth: a leak of tasks, HEARTBEATS_PER_S a
 * second from the start, each never polled.
 *   parked            the leak
 *   parked --healthy  the heartbeat is polled and completed with its connection
 */
#include <stdio.h>
#include <string.h>

#include "../../fixtures/fixture.h"
#define LEAKSCOPE_WEAK 1
#include <leakscope.h>

enum { TICK_MS = 150 };

static uint64_t spawn(const char* name, const char* site) {
  return leakscope_task_spawn ? leakscope_task_spawn("task", name, site, 0) : 0;
}

static void run_once(uint64_t id) {
  if (!leakscope_task_poll_begin) return;
  leakscope_task_poll_begin(id);
  free(malloc(512));
  leakscope_task_poll_end(id);
}

int main(int argc, char** argv) {
  const int healthy = argc > 1 && !strcmp(argv[1], "--healthy");
  printf("{\"ready\":true,\"fixture\":\"parked\",\"pid\":%d,\"cause\":\"%s\"%s,\"heartbeats_per_s\":%.4f,\"heartbeat_site\":\"parked.c:42\"}\n",
         getpid(), healthy ? "steady" : "tasks-leaking", healthy ? "" : ",\"finding\":\"idle-forever\"", 1000.0 / TICK_MS);
  fflush(stdout);
  for (;;) {
    const uint64_t heartbeat = spawn("heartbeat", "parked.c:42");
    for (int i = 0; i < 3; i++) {
      const uint64_t request = spawn("request", "parked.c:50");
      run_once(request);
      if (leakscope_task_complete) leakscope_task_complete(request);
    }
    if (healthy) {
      run_once(heartbeat);
      if (leakscope_task_complete) leakscope_task_complete(heartbeat);
    }
    fixture_sleep_ms(TICK_MS);
  }
}
