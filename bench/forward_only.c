/* The cheapest LD_PRELOAD hook of the malloc family: each call goes on to
 * the next definition (glibc's) and does nothing else. The malloc bench runs
 * it beside the agent to show what interposition alone costs on its load,
 * before any accounting. dlsym allocates while it resolves (glibc bug 19152):
 * those calls are served from a static buffer and never freed. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void* (*next_malloc)(size_t);
static void (*next_free)(void*);
static void* (*next_calloc)(size_t, size_t);
static void* (*next_realloc)(void*, size_t);
static int (*next_posix_memalign)(void**, size_t, size_t);
static void* (*next_aligned_alloc)(size_t, size_t);
static void* (*next_memalign)(size_t, size_t);

static _Alignas(16) char early[16384];
static size_t early_used;
static int resolving;

static void* early_alloc(size_t size) {
  size_t at = early_used;
  early_used += (size + 15) & ~(size_t)15;
  return early_used <= sizeof early ? early + at : NULL;
}

static int is_early(const void* p) { return (const char*)p >= early && (const char*)p < early + sizeof early; }

__attribute__((constructor)) static void resolve(void) {
  resolving = 1;
  next_malloc = dlsym(RTLD_NEXT, "malloc");
  next_free = dlsym(RTLD_NEXT, "free");
  next_calloc = dlsym(RTLD_NEXT, "calloc");
  next_realloc = dlsym(RTLD_NEXT, "realloc");
  next_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
  next_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
  next_memalign = dlsym(RTLD_NEXT, "memalign");
  resolving = 0;
}

void* malloc(size_t size) {
  if (__builtin_expect(next_malloc == NULL, 0)) {
    if (resolving) return early_alloc(size);
    resolve();
  }
  return next_malloc(size);
}

void free(void* block) {
  if (block == NULL || is_early(block)) return;
  next_free(block);
}

void* calloc(size_t count, size_t size) {
  if (__builtin_expect(next_calloc == NULL, 0)) {
    if (resolving) return early_alloc(count * size); /* static: already zero */
    resolve();
  }
  return next_calloc(count, size);
}

void* realloc(void* block, size_t size) {
  if (block != NULL && is_early(block)) {
    void* moved = malloc(size);
    size_t left = (size_t)(early + sizeof early - (const char*)block); /* at most what the buffer holds from there */
    if (moved != NULL) memcpy(moved, block, size < left ? size : left);
    return moved;
  }
  if (__builtin_expect(next_realloc == NULL, 0)) resolve();
  return next_realloc(block, size);
}

int posix_memalign(void** out, size_t alignment, size_t size) {
  if (__builtin_expect(next_posix_memalign == NULL, 0)) resolve();
  return next_posix_memalign(out, alignment, size);
}

void* aligned_alloc(size_t alignment, size_t size) {
  if (__builtin_expect(next_aligned_alloc == NULL, 0)) resolve();
  return next_aligned_alloc(alignment, size);
}

void* memalign(size_t alignment, size_t size) {
  if (__builtin_expect(next_memalign == NULL, 0)) resolve();
  return next_memalign(alignment, size);
}
