/*
 * leakscope task ABI: how an async runtime tells the leakscope agent about
 * its tasks. The agent (libleakscope.so under LD_PRELOAD, the Rust crate, the
 * Node addon) exports these functions.
 *
 * A runtime that must also run without the agent declares them weak and
 * calls them only when they resolved:
 *
 *     #define LEAKSCOPE_WEAK 1
 *     #include <leakscope.h>
 *     if (leakscope_task_spawn) id = leakscope_task_spawn("task", name, "src/conn.c:42", 0);
 *
 * Every function may be called from any thread and takes no lock. An id of 0
 * means "not tracked" (no agent, or the agent's task table was full); every
 * call accepts it and does nothing. Calls with the id of a task that has
 * completed and been forgotten are ignored.
 *
 * Semantics (docs/tasks.md):
 *  - spawn: a new task, scheduled to run. `kind` groups runtimes or task
 *    types ("task", "timer", "promise"); `name` is optional (NULL); `site` is
 *    where it was spawned, "file:line". The agent copies all three strings.
 *    `parent_id` is the spawning task, or 0.
 *  - poll_begin / poll_end: the task runs on the calling thread in between;
 *    memory allocated by this thread meanwhile is charged to the task and its
 *    site. Polls of one task must not overlap; polls of different tasks may
 *    nest on one thread (a block_on inside a poll).
 *  - wake: someone asked for the task to be polled again.
 *  - waker_clone / waker_drop: a handle that can wake the task was made or
 *    dropped. A runtime that reports them lets leakscope find tasks nothing
 *    can wake any more (`lost-waker`); one that never calls them is not
 *    judged on wakers. A wake that consumes its waker is wake + waker_drop.
 *  - complete: the task finished or was cancelled; no more calls for it.
 */
#ifndef LEAKSCOPE_H
#define LEAKSCOPE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LEAKSCOPE_WEAK) && LEAKSCOPE_WEAK
#define LEAKSCOPE_DECL __attribute__((weak))
#else
#define LEAKSCOPE_DECL
#endif

#define LEAKSCOPE_ABI_VERSION 1

LEAKSCOPE_DECL uint64_t leakscope_task_spawn(const char *kind, const char *name, const char *site, uint64_t parent_id);
LEAKSCOPE_DECL void leakscope_task_poll_begin(uint64_t id);
LEAKSCOPE_DECL void leakscope_task_poll_end(uint64_t id);
LEAKSCOPE_DECL void leakscope_task_wake(uint64_t id);
LEAKSCOPE_DECL void leakscope_task_waker_clone(uint64_t id);
LEAKSCOPE_DECL void leakscope_task_waker_drop(uint64_t id);
LEAKSCOPE_DECL void leakscope_task_complete(uint64_t id);
/* The ABI version the loaded agent implements (LEAKSCOPE_ABI_VERSION). */
LEAKSCOPE_DECL uint32_t leakscope_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* LEAKSCOPE_H */
