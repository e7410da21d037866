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
use std::ffi::{c_char, CStr};
use std::fmt::{self, Write};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::task_map::TaskMap;

extern "C" {
    fn leakscope_crate_task_site(kind: *const c_char, site: *const c_char) -> u32;
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

/// A NUL-terminated string on the stack: a span's strings reach the agent
/// (which copies them) without a heap allocation per spawn. Longer text is cut.
struct CBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> CBuf<N> {
    const fn new() -> Self {
        CBuf { bytes: [0; N], len: 0 }
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn as_ptr(&mut self) -> *const c_char {
        self.bytes[self.len] = 0;
        self.bytes.as_ptr().cast()
    }
}

impl<const N: usize> fmt::Write for CBuf<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for &byte in text.as_bytes() {
            if self.len + 1 >= N {
                break;
            }
            if byte != 0 {
                self.bytes[self.len] = byte;
                self.len += 1;
            }
        }
        Ok(())
    }
}

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

    /// The agent's handle of this spawn's site. Tokio spawns at a few places
    /// over and over, so each thread keeps the handles it was given by the
    /// site's address: formatting "file:line" and interning it happen once
    /// per place, not once per task. Only within `on_new_span`, while the
    /// span's fields are alive.
    fn site(&self) -> u32 {
        let key = SiteKey { file: self.file, line: self.line, kind: self.kind.as_ptr() as usize };
        SITES.with(|sites| {
            let slot = &sites[key.slot()];
            let (held, handle) = slot.get();
            if held == key && handle != 0 {
                return handle;
            }
            let mut site = CBuf::<512>::new();
            if self.file.0 != 0 {
                // SAFETY: the address and length of the `&str` Tokio passed
                // for loc.file in this span's fields, still alive here.
                let file = unsafe { std::slice::from_raw_parts(self.file.0 as *const u8, self.file.1) };
                let _ = site.write_str(std::str::from_utf8(file).unwrap_or("unknown"));
                let _ = write!(site, ":{}", self.line);
            }
            let handle = unsafe { leakscope_crate_task_site(self.kind.as_ptr(), site.as_ptr()) };
            if handle != 0 {
                slot.set((key, handle));
            }
            handle
        })
    }
}

/// Which site a spawn is at: loc.file's address and length, loc.line, kind.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SiteKey {
    file: (usize, usize),
    line: u64,
    kind: usize,
}

const SITE_SLOTS: usize = 64;

impl SiteKey {
    fn slot(&self) -> usize {
        let mixed = (self.file.0 as u64 ^ self.line.rotate_left(32) ^ self.kind as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 58) as usize % SITE_SLOTS
    }
}

thread_local! {
    /// The site handles this thread was given, by site; a direct-mapped cache.
    static SITES: [Cell<(SiteKey, u32)>; SITE_SLOTS] = const {
        [const { Cell::new((SiteKey { file: (0, 0), line: 0, kind: 0 }, 0)) }; SITE_SLOTS]
    };
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
                self.kind = Spawn::kind_of(std::str::from_utf8(&kind.bytes[..kind.len]).unwrap_or(""));
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

/// The spans entered on this thread, innermost last, with their tasks: the
/// innermost task is the parent of a task spawned now, and an exit finds its
/// task here without a registry lookup. A span entered again while its task
/// is already being polled here (user code entering `Span::current()`) does
/// not begin or end a poll. Beyond MAX_DEPTH entries the layer falls back to
/// looking tasks up.
const MAX_DEPTH: usize = 16;

#[derive(Clone, Copy)]
struct Entered {
    span: u64,
    task: u64,
    polls: bool, // this entry began a poll, and its exit ends it
}

const NONE: Entered = Entered { span: 0, task: 0, polls: false };

struct Stack {
    entries: [Cell<Entered>; MAX_DEPTH],
    depth: Cell<usize>,
}

thread_local! {
    static STACK: Stack = const { Stack { entries: [const { Cell::new(NONE) }; MAX_DEPTH], depth: Cell::new(0) } };
}

impl Stack {
    /// The task being polled innermost on this thread, or 0.
    fn polling(&self) -> u64 {
        (0..self.depth.get()).rev().map(|i| self.entries[i].get().task).find(|&task| task != 0).unwrap_or(0)
    }

    /// Notes an entered span; true when its task's poll begins now.
    fn push(&self, span: u64, task: u64) -> bool {
        let depth = self.depth.get();
        let nested = (0..depth).any(|i| self.entries[i].get().task == task);
        if depth == MAX_DEPTH {
            return !nested; // not noted: its exit looks the task up
        }
        self.entries[depth].set(Entered { span, task, polls: !nested });
        self.depth.set(depth + 1);
        !nested
    }

    /// Takes the innermost entry of `span` off (exits are almost always the
    /// innermost); None when it was never noted.
    fn pop(&self, span: u64) -> Option<Entered> {
        let depth = self.depth.get();
        let at = (0..depth).rev().find(|&i| self.entries[i].get().span == span)?;
        let entered = self.entries[at].get();
        for i in at..depth - 1 {
            self.entries[i].set(self.entries[i + 1].get());
        }
        self.depth.set(depth - 1);
        Some(entered)
    }
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
        let parent = STACK.with(Stack::polling);
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
