/* A malloc-heavy two-thread load with cross-thread frees: each thread
 * allocates blocks of 16..1040 bytes, writes into them, frees half itself
 * and hands the other half to the other thread through a ring, which frees
 * them. Prints {"ops":N,"seconds":S}. Usage: malloc_bench [ops per thread] [--wait]. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING 4096

typedef struct {
  _Atomic size_t head, tail;
  void* slots[RING];
} Ring;

static Ring rings[2];
static long ops_per_thread;

static int ring_push(Ring* r, void* p) {
  size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  if (head - atomic_load_explicit(&r->tail, memory_order_acquire) == RING) return 0;
  r->slots[head % RING] = p;
  atomic_store_explicit(&r->head, head + 1, memory_order_release);
  return 1;
}

static void* ring_pop(Ring* r) {
  size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  if (tail == atomic_load_explicit(&r->head, memory_order_acquire)) return NULL;
  void* p = r->slots[tail % RING];
  atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
  return p;
}

static void drain(Ring* r) {
  void* p;
  while ((p = ring_pop(r)) != NULL) free(p);
}

static void* worker(void* arg) {
  int me = (int)(intptr_t)arg;
  Ring* outbox = &rings[me];
  Ring* inbox = &rings[1 - me];
  uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(me + 1);
  void* kept[64] = {0};
  for (long i = 0; i < ops_per_thread; i++) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    size_t size = 16 + (seed % 1025);
    char* block = malloc(size);
    memset(block, (int)i, size < 128 ? size : 128);
    if (seed & 0x100) {
      /* The other thread may have finished: then free it here. */
      if (!ring_push(outbox, block)) {
        drain(inbox);
        if (!ring_push(outbox, block)) free(block);
      }
    } else {
      size_t slot = (seed >> 20) % 64;
      free(kept[slot]);
      kept[slot] = block;
    }
    if ((i & 31) == 0) drain(inbox);
  }
  for (int k = 0; k < 64; k++) free(kept[k]);
  return NULL;
}

static void on_go(int sig) { (void)sig; }

int main(int argc, char** argv) {
  ops_per_thread = argc > 1 ? atol(argv[1]) : 4000000;
  /* --wait: report {"waiting":PID} and start the load on SIGUSR1, so that a
   * tool can attach to the running process first (leakscope's injector,
   * heaptrack -p). */
  if (argc > 2 && strcmp(argv[2], "--wait") == 0) {
    sigset_t go, before;
    sigemptyset(&go);
    sigaddset(&go, SIGUSR1);
    signal(SIGUSR1, on_go);
    sigprocmask(SIG_BLOCK, &go, &before);
    printf("{\"waiting\":%d}\n", getpid());
    fflush(stdout);
    sigsuspend(&before);
    sigprocmask(SIG_SETMASK, &before, NULL);
  }
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  pthread_t threads[2];
  for (int t = 0; t < 2; t++) pthread_create(&threads[t], NULL, worker, (void*)(intptr_t)t);
  for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
  drain(&rings[0]);
  drain(&rings[1]);
  clock_gettime(CLOCK_MONOTONIC, &end);
  double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
  printf("{\"ops\":%ld,\"seconds\":%.6f}\n", 2 * ops_per_thread, seconds);
  return 0;
}
