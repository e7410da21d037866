/* The task ABI's cost per call: THREADS threads each spawn TASKS tasks, then
 * poll each once (poll_begin + poll_end), wake each, and complete each; a
 * barrier separates the phases and each phase is timed on its own. Without
 * the agent the weak ABI symbols are null and the same loops run empty.
 * Then, three seconds later, spawns as many again (respawn_ns: into recycled
 * records when LEAKSCOPE_TASK_RETAIN_MAX=0).
 * Prints {"threads":..,"tasks":..,"spawn_ns":..,"poll_ns":..,"wake_ns":..,"complete_ns":..,"respawn_ns":..}
 * with the mean wall time per call on one thread.
 * usage: task_abi_bench THREADS TASKS_PER_THREAD */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define LEAKSCOPE_WEAK 1
#include <leakscope.h>

enum { SPAWN, POLL, WAKE, COMPLETE, RESPAWN, PHASES };
static const char* const phase_names[PHASES] = {"spawn_ns", "poll_ns", "wake_ns", "complete_ns", "respawn_ns"};
static const char* const sites[8] = {"bench/task_abi_bench.c:1", "bench/task_abi_bench.c:2", "bench/task_abi_bench.c:3",
                                     "bench/task_abi_bench.c:4", "bench/task_abi_bench.c:5", "bench/task_abi_bench.c:6",
                                     "bench/task_abi_bench.c:7", "bench/task_abi_bench.c:8"};

static int threads;
static long tasks;
static pthread_barrier_t barrier;
static double phase_seconds[PHASES];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The phase's wall time, from the first thread's start to the last one's end. */
static void timed_phase(int phase, int leader, void (*body)(uint64_t*, long), uint64_t* ids) {
  pthread_barrier_wait(&barrier);
  const double start = now();
  body(ids, tasks);
  pthread_barrier_wait(&barrier);
  if (leader) phase_seconds[phase] = now() - start;
}

static void spawn_all(uint64_t* ids, long n) {
  for (long i = 0; i < n; i++) ids[i] = leakscope_task_spawn ? leakscope_task_spawn("task", NULL, sites[i & 7], 0) : (uint64_t)i;
  __asm__ volatile("" ::: "memory");
}
static void poll_all(uint64_t* ids, long n) {
  for (long i = 0; i < n; i++) {
    if (leakscope_task_poll_begin) leakscope_task_poll_begin(ids[i]);
    if (leakscope_task_poll_end) leakscope_task_poll_end(ids[i]);
    __asm__ volatile("" ::: "memory");
  }
}
static void wake_all(uint64_t* ids, long n) {
  for (long i = 0; i < n; i++) {
    if (leakscope_task_wake) leakscope_task_wake(ids[i]);
    __asm__ volatile("" ::: "memory");
  }
}
static void complete_all(uint64_t* ids, long n) {
  for (long i = 0; i < n; i++) {
    if (leakscope_task_complete) leakscope_task_complete(ids[i]);
    __asm__ volatile("" ::: "memory");
  }
}

static void* worker(void* arg) {
  const int leader = arg != NULL;
  uint64_t* ids = malloc(sizeof(uint64_t) * tasks);
  timed_phase(SPAWN, leader, spawn_all, ids);
  timed_phase(POLL, leader, poll_all, ids);
  timed_phase(WAKE, leader, wake_all, ids);
  timed_phase(COMPLETE, leader, complete_all, ids);
  /* Spawning into records the agent recycled: with LEAKSCOPE_TASK_RETAIN_MAX=0
   * two sampler sweeps (one a second) forget the completed tasks and free
   * their records. The first spawn phase paid for fresh pages. */
  if (leader) sleep(3);
  timed_phase(RESPAWN, leader, spawn_all, ids);
  free(ids);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: task_abi_bench THREADS TASKS_PER_THREAD\n");
    return 2;
  }
  threads = atoi(argv[1]);
  tasks = atol(argv[2]);
  pthread_barrier_init(&barrier, NULL, threads);
  pthread_t* handles = malloc(sizeof(pthread_t) * threads);
  for (int i = 0; i < threads; i++) pthread_create(&handles[i], NULL, worker, i == 0 ? (void*)1 : NULL);
  for (int i = 0; i < threads; i++) pthread_join(handles[i], NULL);
  printf("{\"threads\":%d,\"tasks\":%ld,\"agent\":%s", threads, tasks, leakscope_task_spawn ? "true" : "false");
  /* Per call on one thread: every thread made `tasks` calls in the phase's wall time. */
  for (int p = 0; p < PHASES; p++) printf(",\"%s\":%.2f", phase_names[p], phase_seconds[p] * 1e9 / tasks);
  printf("}\n");
  return 0;
}
