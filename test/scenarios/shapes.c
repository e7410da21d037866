/* The shapes a service's live data takes, one per mode, each with its own
 * truth: what it is (steady or a leak) and how much. Every mode also churns
 * (allocates and frees) as a service does.
 *
 *   shapes ramp           200 MiB loaded in the first 2 s, then light load: steady
 *   shapes late-leak      flat for 40 s, then keeps 2 MiB/s: a leak
 *   shapes sawtooth       a cache that fills 40 MiB and empties every 2 s: steady
 *   shapes sawtooth-leak  the same cache, and 1 MiB/s kept beside it: a leak
 *   shapes pool           16 worker threads started at once, then steady work: steady
 *   shapes thread-leak    a thread started every 2 s that never ends: a leak of threads
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../fixtures/fixture.h"

enum { BLOCK = 4096, TICK_MS = 100 };

static void churn(void) {
  for (int i = 0; i < 200; i++) free(malloc(256 + (size_t)i * 16));
}

static void* keep(size_t bytes) {
  void* block = malloc(bytes);
  fixture_touch(block, bytes);
  return block;
}

static void* worker(void* arg) {
  (void)arg;
  for (;;) {
    churn();
    fixture_sleep_ms(TICK_MS);
  }
  return NULL;
}

static void* stuck(void* arg) {
  (void)arg;
  fixture_park();
  return NULL;
}

/* The truth line: what the program is, and the amount a finding should state. */
static void truth(const char* mode, const char* cause, const char* finding, const char* amount_field, double amount) {
  printf("{\"ready\":true,\"fixture\":\"shapes\",\"mode\":\"%s\",\"pid\":%d,\"cause\":\"%s\"", mode, getpid(), cause);
  if (finding) printf(",\"finding\":\"%s\"", finding);
  if (amount_field) printf(",\"%s\":%g", amount_field, amount);
  printf("}\n");
  fflush(stdout);
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "ramp")) {
    truth(mode, "steady", NULL, NULL, 0);
    for (int t = 0; t < 20; t++) {
      for (int i = 0; i < 10 * 256; i++) keep(BLOCK); /* 10 MiB a tick */
      fixture_sleep_ms(TICK_MS);
    }
    worker(NULL);
  } else if (!strcmp(mode, "late-leak")) {
    truth(mode, "live-data-growing", "heap-growth", "leak_bytes_per_s", 2.0 * 1024 * 1024);
    for (long t = 0;; t++) {
      if (t >= 400) /* 40 s */
        for (int i = 0; i < 51; i++) keep(BLOCK); /* 51 blocks a tick: 2.0 MiB/s */
      churn();
      fixture_sleep_ms(TICK_MS);
    }
  } else if (!strcmp(mode, "sawtooth") || !strcmp(mode, "sawtooth-leak")) {
    const int leak = !strcmp(mode, "sawtooth-leak");
    if (leak) truth(mode, "live-data-growing", "heap-growth", "leak_bytes_per_s", 1.0 * 1024 * 1024);
    else truth(mode, "steady", NULL, NULL, 0);
    enum { CACHE_BLOCKS = 40 * 256 }; /* 40 MiB */
    static void* cache[CACHE_BLOCKS];
    int filled = 0;
    for (;;) {
      for (int i = 0; i < CACHE_BLOCKS / 20 && filled < CACHE_BLOCKS; i++) cache[filled++] = keep(BLOCK);
      if (filled == CACHE_BLOCKS) {
        while (filled > 0) free(cache[--filled]);
      }
      if (leak)
        for (int i = 0; i < 26; i++) keep(BLOCK); /* 26 blocks a tick: ~1 MiB/s */
      churn();
      fixture_sleep_ms(TICK_MS);
    }
  } else if (!strcmp(mode, "pool")) {
    truth(mode, "steady", NULL, NULL, 0);
    for (int i = 0; i < 16; i++) {
      pthread_t thread;
      pthread_create(&thread, NULL, worker, NULL);
    }
    worker(NULL);
  } else if (!strcmp(mode, "thread-leak")) {
    truth(mode, "threads-leaking", "thread-growth", "threads_per_s", 0.5);
    for (;;) {
      pthread_t thread;
      pthread_create(&thread, NULL, stuck, NULL);
      for (int i = 0; i < 20; i++) {
        churn();
        fixture_sleep_ms(TICK_MS);
      }
    }
  }
  fprintf(stderr, "usage: shapes ramp|late-leak|sawtooth|sawtooth-leak|pool|thread-leak\n");
  return 2;
}
