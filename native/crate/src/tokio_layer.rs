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

use std::cell::Cell;
use std::ffi::{c_char, CString};
use std::fmt::{self, Write as _};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

extern "C" {
    fn leakscope_task_spawn(kind: *const c_char, name: *const c_char, site: *const c_char, parent_id: u64) -> u64;
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

/// The agent's id of the task a span stands for, kept in the span's extensions.
struct TaskId(u64);

/// What a `runtime.spawn` span says about its task.
#[derive(Default)]
struct Spawn {
    kind: String,
    name: String,
    file: String,
    line: u64,
}

impl Visit for Spawn {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "kind" => value.clone_into(&mut self.kind),
            "task.name" => value.clone_into(&mut self.name),
            "loc.file" => value.clone_into(&mut self.file),
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
        let into = match field.name() {
            "kind" => &mut self.kind,
            "task.name" => &mut self.name,
            _ => return,
        };
        into.clear();
        let _ = write!(into, "{value:?}");
    }
}

impl Spawn {
    /// The kind as findings name it: "task", "local task", "blocking task".
    fn kind(&self) -> &'static str {
        match self.kind.as_str() {
            "local" => "local task",
            "blocking" => "blocking task",
            "block_on" => "block_on task",
            _ => "task",
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

/// The polls running on this thread, innermost last: the innermost is the
/// parent of a task spawned now. A span entered again while its task is
/// already being polled here (user code entering `Span::current()`) is marked
/// so that its exit does not end the poll.
const MAX_DEPTH: usize = 16;
const NESTED: u64 = 1 << 63;

thread_local! {
    static POLLS: Cell<[u64; MAX_DEPTH]> = const { Cell::new([0; MAX_DEPTH]) };
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

fn polling() -> u64 {
    let depth = DEPTH.get();
    if depth == 0 || depth > MAX_DEPTH {
        return 0;
    }
    POLLS.get()[depth - 1] & !NESTED
}

/// Records an entered task on this thread's stack; false when it was already
/// being polled here.
fn push_poll(task: u64) -> bool {
    let depth = DEPTH.get();
    let mut polls = POLLS.get();
    let nested = polls[..depth.min(MAX_DEPTH)].iter().any(|&p| p & !NESTED == task);
    if depth < MAX_DEPTH {
        polls[depth] = if nested { task | NESTED } else { task };
        POLLS.set(polls);
    }
    DEPTH.set(depth + 1);
    !nested
}

/// Pops the innermost entry; true when its exit ends a poll.
fn pop_poll() -> bool {
    let depth = DEPTH.get();
    if depth == 0 {
        return false;
    }
    DEPTH.set(depth - 1);
    depth > MAX_DEPTH || POLLS.get()[depth - 1] & NESTED == 0
}

/// The layer's work; see [`layer`] for the filtered layer to install.
pub struct TaskLayer {
    _private: (),
}

impl TaskLayer {
    fn task<S>(id: &Id, ctx: &Context<'_, S>) -> Option<u64>
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
        let mut spawn = Spawn::default();
        attrs.record(&mut spawn);
        let site = CString::new(format!("{}:{}", spawn.file, spawn.line)).unwrap_or_default();
        let name = CString::new(spawn.name.as_str()).unwrap_or_default();
        let kind = CString::new(spawn.kind()).unwrap_or_default();
        let name_ptr = if spawn.name.is_empty() { std::ptr::null() } else { name.as_ptr() };
        let task = unsafe { leakscope_task_spawn(kind.as_ptr(), name_ptr, site.as_ptr(), polling()) };
        if task == 0 {
            return; // no agent yet, or its task table is full
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(TaskId(task));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(task) = Self::task(id, &ctx) {
            if push_poll(task) {
                unsafe { leakscope_task_poll_begin(task) };
            }
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(task) = Self::task(id, &ctx) {
            if pop_poll() {
                unsafe { leakscope_task_poll_end(task) };
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(task) = Self::task(&id, &ctx) {
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
        let Some(task) = Self::task(&Id::from_u64(waker.span), &ctx) else {
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
    TaskLayer { _private: () }.with_filter(TokioTasks)
}

/// A registry with the layer alone, for a service that has no subscriber of
/// its own: `tracing::subscriber::set_global_default(leakscope::subscriber())`.
pub fn subscriber() -> impl Subscriber + Send + Sync {
    tracing_subscriber::registry().with(layer())
}
