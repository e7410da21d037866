//! Tokio's tasks as leakscope tasks through the runtime's own hooks.
//!
//! Built with `--cfg tokio_unstable`, Tokio's runtime builder takes four
//! callbacks: a task spawned (with its spawn location), a poll begun, a poll
//! ended, a task terminated (finished, cancelled or aborted). Each becomes a
//! call of the agent's task ABI, so idle-forever, task-growth, never-yielded
//! and per-task memory work as with the tracing layer — at a fraction of its
//! cost, because no span is made, kept or entered for any task.
//!
//! What the hooks do not give: task names (`tokio::task::Builder::name`)
//! and wakers, so lost-waker is not judged (the snapshot says so:
//! `tasks.wakers_tracked_kinds` does not list "task"). For those, use the
//! tracing layer ([`crate::layer`]) instead; not both on one runtime, or
//! every task is counted twice.

use std::ffi::c_char;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::runtime::{Builder, TaskMeta};

use crate::polls::STACK;
use crate::sites;
use crate::task_map::TaskMap;

extern "C" {
    fn leakscope_crate_task_spawn_at(site: u32, name: *const c_char, parent_id: u64) -> u64;
    fn leakscope_task_poll_begin(id: u64);
    fn leakscope_task_poll_end(id: u64);
    fn leakscope_task_complete(id: u64);
}

/// Slots in the Tokio task id → agent task table (16 bytes each, touched as
/// used). Tokio numbers tasks in order, so live tasks land in order too.
const TASK_MAP_BITS: u32 = 17;

/// Tokio's task id as a number. `tokio::task::Id` shows its number only by
/// Display or Hash; its Hash is the number's (`write_u64`), which this
/// hasher keeps. Another encoding still yields a number unique to the id.
struct IdNumber(u64);

impl Hasher for IdNumber {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn number(meta: &TaskMeta<'_>) -> u64 {
    let mut number = IdNumber(0);
    meta.id().hash(&mut number);
    number.0
}

fn spawned(tasks: &TaskMap, meta: &TaskMeta<'_>) {
    let at = meta.spawned_at();
    let site = sites::handle(c"task", Some(at.file()), u64::from(at.line()));
    let parent = STACK.with(|stack| stack.polling());
    let task = unsafe { leakscope_crate_task_spawn_at(site, std::ptr::null(), parent) };
    if task != 0 && !tasks.insert(number(meta), task) {
        // No room near its home in the table: its polls and its end could
        // not be told, so it is not tracked rather than left live forever.
        unsafe { leakscope_task_complete(task) };
    }
}

fn poll_began(tasks: &TaskMap, meta: &TaskMeta<'_>) {
    let key = number(meta);
    let Some(task) = tasks.find(key) else { return };
    if STACK.with(|stack| stack.push(key, task)) {
        unsafe { leakscope_task_poll_begin(task) };
    }
}

fn poll_ended(tasks: &TaskMap, meta: &TaskMeta<'_>) {
    let key = number(meta);
    match STACK.with(|stack| stack.pop(key)) {
        Some(entered) => {
            if entered.polls {
                unsafe { leakscope_task_poll_end(entered.task) };
            }
            if entered.finished {
                unsafe { leakscope_task_complete(entered.task) };
            }
        }
        // Deeper than the stack keeps: the task is looked up.
        None => {
            if let Some(task) = tasks.find(key) {
                unsafe { leakscope_task_poll_end(task) };
            }
        }
    }
}

/// A task finishes inside its last poll (Tokio calls the terminate hook
/// before the poll's end hook): it completes when that poll ends, in the
/// order the agent's task ABI asks for, so the last poll is counted even if
/// the agent forgets a completed task at once (as it does when its table is
/// crowded). A task cancelled while not polled (aborted, or at runtime
/// shutdown) completes now.
fn terminated(tasks: &TaskMap, meta: &TaskMeta<'_>) {
    let key = number(meta);
    let Some(task) = tasks.remove(key) else { return };
    if !STACK.with(|stack| stack.finish(key)) {
        unsafe { leakscope_task_complete(task) };
    }
}

/// Installs leakscope's task hooks on a Tokio runtime builder:
///
/// ```ignore
/// let runtime = leakscope::runtime_hooks(&mut tokio::runtime::Builder::new_multi_thread())
///     .enable_all()
///     .build()?;
/// runtime.block_on(serve());
/// ```
///
/// Needs `RUSTFLAGS="--cfg tokio_unstable"` (Tokio's hooks are unstable
/// API), not Tokio's `tracing` feature, which costs something even with
/// no subscriber (about 0.08 µs a request on leakscope's quote service).
/// Replaces any task hooks set on the builder before.
pub fn runtime_hooks(builder: &mut Builder) -> &mut Builder {
    let tasks = Arc::new(TaskMap::new(TASK_MAP_BITS));
    let (on_spawn, on_begin, on_end, on_terminate) = (tasks.clone(), tasks.clone(), tasks.clone(), tasks);
    builder
        .on_task_spawn(move |meta| spawned(&on_spawn, meta))
        .on_before_task_poll(move |meta| poll_began(&on_begin, meta))
        .on_after_task_poll(move |meta| poll_ended(&on_end, meta))
        .on_task_terminate(move |meta| terminated(&on_terminate, meta))
}
