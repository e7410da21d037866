/* A target for the snapshot benchmark: WORKERS threads hold TASKS live tasks
 * between them, spread over SITES spawn sites, and keep working: every
 * PERIOD_MS each worker polls one of its tasks (which allocates and frees)
 * and measures how late it woke up. Commands on stdin: "reset" starts a
 * window, "report" prints the worst lateness of any worker in it:
 * {"max_late_ms":..,"wakeups":..}.
 * usage: many_tasks WORKERS TASKS SITES */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LEAKSCOPE_WEAK 1
#include <leakscope.h>

enum { PERIOD_MS = 5 };

static int workers, sites;
static long tasks;
static char** site_names;
static _Atomic long ready_workers;
static _Atomic uint64_t window; /* bumped by "reset" */
static _Atomic uint64_t* late_ns; /* per worker, in the current window */
static _Atomic uint64_t wakeups;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void* worker(void* arg) {
  const long index = (long)(intptr_t)arg;
  const long mine = tasks / workers + (index < tasks % workers ? 1 : 0);
  uint64_t* ids = malloc(sizeof(uint64_t) * (mine ? mine : 1));
  for (long k = 0; k < mine; k++) {
    ids[k] = leakscope_task_spawn ? leakscope_task_spawn("task", "idle", site_names[(index + k) % sites], 0) : 0;
    if (leakscope_task_poll_begin) leakscope_task_poll_begin(ids[k]);
    if (leakscope_task_poll_end) leakscope_task_poll_end(ids[k]);
  }
  atomic_fetch_add(&ready_workers, 1);
  uint64_t seen_window = 0;
  for (long round = 0;; round++) {
    const uint64_t before = now_ns();
    struct timespec period = {0, PERIOD_MS * 1000000L};
    nanosleep(&period, NULL);
    const uint64_t late = now_ns() - before - PERIOD_MS * 1000000ull;
    const uint64_t current = atomic_load(&window);
    if (current != seen_window) {
      seen_window = current;
      continue; /* this sleep began before the window */
    }
    if (late > atomic_load(&late_ns[index])) atomic_store(&late_ns[index], late);
    atomic_fetch_add(&wakeups, 1);
    if (mine > 0) {
      const uint64_t id = ids[round % mine];
      if (leakscope_task_poll_begin) leakscope_task_poll_begin(id);
      free(malloc(64 + (round & 63)));
      if (leakscope_task_poll_end) leakscope_task_poll_end(id);
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: many_tasks WORKERS TASKS SITES\n");
    return 2;
  }
  workers = atoi(argv[1]);
  tasks = atol(argv[2]);
  sites = atoi(argv[3]);
  site_names = malloc(sizeof(char*) * sites);
  for (int s = 0; s < sites; s++) {
    site_names[s] = malloc(48);
    snprintf(site_names[s], 48, "bench/many_tasks.c:%d", 1000 + s);
  }
  late_ns = calloc(workers, sizeof *late_ns);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (long i = 0; i < workers; i++) {
    pthread_t thread;
    pthread_create(&thread, &attr, worker, (void*)(intptr_t)i);
  }
  while (atomic_load(&ready_workers) < workers) usleep(10000);
  printf("{\"ready\":true,\"pid\":%d,\"workers\":%d,\"tasks\":%ld,\"sites\":%d}\n", (int)getpid(), workers, tasks, sites);
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "reset", 5) == 0) {
      for (int i = 0; i < workers; i++) atomic_store(&late_ns[i], 0);
      atomic_store(&wakeups, 0);
      atomic_fetch_add(&window, 1);
      printf("{\"reset\":true}\n");
    } else if (strncmp(line, "report", 6) == 0) {
      uint64_t worst = 0;
      for (int i = 0; i < workers; i++)
        if (atomic_load(&late_ns[i]) > worst) worst = atomic_load(&late_ns[i]);
      printf("{\"max_late_ms\":%.3f,\"wakeups\":%lu}\n", worst / 1e6, (unsigned long)atomic_load(&wakeups));
    }
    fflush(stdout);
  }
  return 0;
}
