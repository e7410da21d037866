//! Tokio's tasks as leakscope tasks.
//!
//! Built with `--cfg tokio_unstable` and its `tracing` feature, Tokio gives
//! every task a `runtime.spawn` span (kind, name, spawn location), enters it
//! for each poll, closes it when the task's future is dropped (finished or
//! aborted), and reports each waker clone, drop and wake as an event. The
//! layer turns those into the agent's task ABI (native/include/leakscope.h):
//! spawn, poll_begin/poll_end, wake, waker_clone/waker_drop, complete.
//!
//! The layer filters for itself (a per-layer filter), so it neither turns on
//! the application's other spans and events nor hides them from other layers
//! such as console-subscriber's or a fmt layer.
//!
//! One poll more than Tokio made is counted for each finished task: tracing
//! enters a task's span once more to drop its future.
//!
//! Tracing's registry keeping a span for every task costs about as much as
//! the layer's own work; `crate::runtime_hooks` takes tasks from Tokio's
//! runtime hooks with no span at all, without names and wakers.

use std::ffi::{c_char, CStr};
use std::fmt::{self, Write};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::polls::STACK;
use crate::sites::{self, CBuf};
use crate::task_map::TaskMap;

extern "C" {
    fn leakscope_crate_task_spawn_at(site: u32, name: *const c_char, parent_id: u64) -> u64;
    fn leakscope_task_poll_begin(id: u64);
    fn leakscope_task_poll_end(id: u64);
    fn leakscope_task_wake(id: u64);
    fn leakscope_task_waker_clone(id: u64);
    fn leakscope_task_waker_drop(id: u64);
    fn leakscope_task_complete(id: u64);
}

/// Tokio's task spans and waker events, nothing else.
fn is_task_span(meta: &Metadata<'_>) -> bool {
    meta.name() == "runtime.spawn" && (meta.target() == "tokio::task" || meta.target() == "tokio::task::blocking")
}

fn is_waker_event(meta: &Metadata<'_>) -> bool {
    meta.is_event() && meta.target() == "tokio::task::waker"
}

/// The per-layer filter: Tokio's task callsites only.
pub struct TokioTasks;

impl<S> Filter<S> for TokioTasks {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        is_task_span(meta) || is_waker_event(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_task_span(meta) || is_waker_event(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}

/// The agent's id of the task a span stands for, kept in the span's
/// extensions when the layer's table had no room for it.
struct TaskId(u64);

/// Slots in the layer's span → task table: 2 MiB of address space, touched
/// as tasks land in it. Live tasks beyond about 90,000 go to extensions.
const TASK_MAP_BITS: u32 = 17;

/// What a `runtime.spawn` span says about its task.
struct Spawn {
    kind: &'static CStr,
    name: CBuf<128>,
    /// loc.file: Tokio's `Location::file()`, a static string, kept as its
    /// address and length (the text is read only while the span is made).
    file: (usize, usize),
    line: u64,
}

impl Spawn {
    fn new() -> Spawn {
        Spawn { kind: c"task", name: CBuf::new(), file: (0, 0), line: 0 }
    }

    /// The kind as findings name it: "task", "local task", "blocking task".
    fn kind_of(kind: &str) -> &'static CStr {
        match kind {
            "local" => c"local task",
            "blocking" => c"blocking task",
            "block_on" => c"block_on task",
            _ => c"task",
        }
    }

    /// The agent's handle of this spawn's site. Only within `on_new_span`,
    /// while the span's fields (and so loc.file) are alive.
    fn site(&self) -> u32 {
        // SAFETY: the address and length of the `&str` Tokio passed for
        // loc.file in this span's fields, still alive here.
        let file = (self.file.0 != 0)
            .then(|| unsafe { std::slice::from_raw_parts(self.file.0 as *const u8, self.file.1) })
            .map(|file| std::str::from_utf8(file).unwrap_or("unknown"));
        sites::handle(self.kind, file, self.line)
    }
}

impl Visit for Spawn {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "kind" => self.kind = Spawn::kind_of(value),
            "task.name" => {
                self.name.clear();
                let _ = self.name.write_str(value);
            }
            "loc.file" => self.file = (value.as_ptr() as usize, value.len()),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "loc.line" {
            self.line = value;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%kind` and `%task.name` arrive as Display values, through Debug.
        match field.name() {
            "kind" => {
                let mut kind = CBuf::<16>::new();
                let _ = write!(kind, "{value:?}");
                self.kind = Spawn::kind_of(kind.as_str());
            }
            "task.name" => {
                self.name.clear();
                let _ = write!(self.name, "{value:?}");
            }
            _ => {}
        }
    }
}

/// A waker event: what happened, to which task span.
#[derive(Default)]
struct WakerOp {
    op: Option<Op>,
    span: u64,
}

#[derive(Clone, Copy)]
enum Op {
    Wake,
    WakeByRef,
    Clone,
    Drop,
}

impl Visit for WakerOp {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "op" {
            self.op = match value {
                "waker.wake" => Some(Op::Wake),
                "waker.wake_by_ref" => Some(Op::WakeByRef),
                "waker.clone" => Some(Op::Clone),
                "waker.drop" => Some(Op::Drop),
                _ => None,
            };
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "task.id" {
            self.span = value;
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

/// The layer's work; see [`layer`] for the filtered layer to install.
pub struct TaskLayer {
    tasks: TaskMap,
}

impl TaskLayer {
    fn task<S>(&self, id: &Id, ctx: &Context<'_, S>) -> Option<u64>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.tasks.find(id.into_u64()).or_else(|| Self::kept_in_span(id, ctx))
    }

    /// The task of a span the table had no room for.
    fn kept_in_span<S>(id: &Id, ctx: &Context<'_, S>) -> Option<u64>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        ctx.span(id)?.extensions().get::<TaskId>().map(|task| task.0)
    }
}

impl<S> Layer<S> for TaskLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !is_task_span(attrs.metadata()) {
            return;
        }
        let mut spawn = Spawn::new();
        attrs.record(&mut spawn);
        let site = spawn.site();
        let name = if spawn.name.is_empty() { std::ptr::null() } else { spawn.name.as_ptr() };
        let parent = STACK.with(|stack| stack.polling());
        let task = unsafe { leakscope_crate_task_spawn_at(site, name, parent) };
        if task == 0 {
            return; // no agent yet, or its task table is full
        }
        if !self.tasks.insert(id.into_u64(), task) {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(TaskId(task));
            }
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(task) = self.task(id, &ctx) else { return };
        if STACK.with(|stack| stack.push(id.into_u64(), task)) {
            unsafe { leakscope_task_poll_begin(task) };
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        match STACK.with(|stack| stack.pop(id.into_u64())) {
            Some(entered) if entered.polls => unsafe { leakscope_task_poll_end(entered.task) },
            Some(_) => {}
            None => {
                if let Some(task) = self.task(id, &ctx) {
                    unsafe { leakscope_task_poll_end(task) };
                }
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let task = self.tasks.remove(id.into_u64()).or_else(|| Self::kept_in_span(&id, &ctx));
        if let Some(task) = task {
            unsafe { leakscope_task_complete(task) };
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !is_waker_event(event.metadata()) {
            return;
        }
        let mut waker = WakerOp::default();
        event.record(&mut waker);
        let Some(op) = waker.op else { return };
        if waker.span == 0 {
            return;
        }
        let Some(task) = self.task(&Id::from_u64(waker.span), &ctx) else {
            return;
        };
        unsafe {
            match op {
                Op::Wake => {
                    leakscope_task_wake(task);
                    leakscope_task_waker_drop(task); // a wake by value consumes its waker
                }
                Op::WakeByRef => leakscope_task_wake(task),
                Op::Clone => leakscope_task_waker_clone(task),
                Op::Drop => leakscope_task_waker_drop(task),
            }
        }
    }
}

/// The layer to add to a `tracing_subscriber` registry, beside any others:
///
/// ```ignore
/// use tracing_subscriber::prelude::*;
/// tracing_subscriber::registry().with(leakscope::layer()).init();
/// ```
///
/// Tokio reports its tasks only when the service is built with
/// `RUSTFLAGS="--cfg tokio_unstable"` and Tokio's `tracing` feature.
pub fn layer<S>() -> Filtered<TaskLayer, TokioTasks, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    TaskLayer { tasks: TaskMap::new(TASK_MAP_BITS) }.with_filter(TokioTasks)
}
