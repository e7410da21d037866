/* jemalloc slab fragmentation, the way a cache that deleted most of its
 * keys leaves it: 1.2 million small blocks, then 80% of them freed, spread
 * over every slab. Run under jemalloc (leakscope run --allocator jemalloc).
 * Truth from jemalloc itself (mallctl): stats.active − stats.allocated once
 * the frees are done, and the anonymous RSS it measured then.
 */
#include <dlfcn.h>
#include <stdio.h>

#include "../../fixtures/fixture.h"

enum { BLOCKS = 1200000 };

typedef int (*mallctl_fn)(const char*, void*, size_t*, void*, size_t);

static size_t stat(mallctl_fn mallctl, const char* name) {
  size_t value = 0, size = sizeof value;
  mallctl(name, &value, &size, NULL, 0);
  return value;
}

static long rss_anon_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "RssAnon: %ld kB", &kib) == 1) break;
  if (f) fclose(f);
  return kib;
}

int main(void) {
  mallctl_fn mallctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
  if (!mallctl) {
    fprintf(stderr, "slab_frag: not running on jemalloc (no mallctl)\n");
    return 2;
  }
  static void* blocks[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    blocks[i] = malloc(80 + (i % 4) * 16); /* 80..128 bytes: three size classes */
    fixture_touch(blocks[i], 80);
  }
  for (int i = 0; i < BLOCKS; i++)
    if (i % 5 != 0) free(blocks[i]);
  uint64_t epoch = 1;
  size_t size = sizeof epoch;
  mallctl("epoch", &epoch, &size, &epoch, size);
  const size_t active = stat(mallctl, "stats.active"), allocated = stat(mallctl, "stats.allocated");
  printf("{\"ready\":true,\"fixture\":\"slab-frag\",\"pid\":%d,\"cause\":\"allocator-retention\",\"finding\":\"slab-fragmentation\","
         "\"active_bytes\":%zu,\"allocated_bytes\":%zu,\"fragmented_bytes\":%zu,\"rss_anon_bytes\":%ld}\n",
         getpid(), active, allocated, active - allocated, rss_anon_kib() * 1024);
  fflush(stdout);
  /* A service keeps serving: a little churn on the surviving heap. */
  for (;;) {
    for (int i = 0; i < 100; i++) free(malloc(96));
    fixture_sleep_ms(100);
  }
}
