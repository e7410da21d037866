//! leakscope inside a Rust service.
//!
//! A Rust `#[global_allocator]` (mimalloc, jemalloc, or the system one) is
//! linked into the program and never calls `malloc`, so no preloaded hook can
//! see it. Wrap it instead, and the same per-thread heap ledger the C agent
//! keeps is fed from here; the agent starts with the first allocation and
//! answers `leakscope attach <pid>` and `leakscope snapshot <pid>` with
//! `agent.mode` "crate".
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: leakscope::Tracked<mimalloc::MiMalloc> = leakscope::Tracked::new(mimalloc::MiMalloc);
//! ```
//!
//! Tokio's tasks become leakscope tasks (with `--cfg tokio_unstable`) one of
//! two ways. With the `tokio` feature, `runtime_hooks` sets Tokio's runtime
//! hooks on a runtime built by hand — no spans, the cheap way, without task
//! names or wakers:
//!
//! ```ignore
//! let runtime = leakscope::runtime_hooks(&mut tokio::runtime::Builder::new_multi_thread()).enable_all().build()?;
//! ```
//!
//! With the `tracing` feature, [`layer`] turns Tokio's task instrumentation
//! (its `tracing` feature) into tasks, names and wakers included:
//!
//! ```ignore
//! use tracing_subscriber::prelude::*;
//! tracing_subscriber::registry().with(leakscope::layer()).init();
//! ```
//!
//! The agent also reads the wrapped allocator's own statistics (and runs its
//! reclaim call) once it knows which allocator that is: see [`Wrapped`].
//! Environment variables are the agent's (`LEAKSCOPE_SAMPLE_INTERVAL`,
//! `LEAKSCOPE_SOCKET_DIR`, …; docs/agent.md in the leakscope repository).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};

extern "C" {
    fn leakscope_crate_start(allocator: *const c_char, calls: *const c_void) -> bool;
    fn leakscope_crate_alloc(block: *mut c_void, size: usize);
    fn leakscope_crate_free(block: *mut c_void, size: usize);
}

/// An allocator the agent can describe: its name (`glibc`, `mimalloc`,
/// `jemalloc`, or any other) and, for mimalloc and jemalloc, the calls its
/// probe makes. Implemented for [`System`] and, with the crate's features, for
/// `mimalloc::MiMalloc`.
pub trait Wrapped: GlobalAlloc {
    /// The allocator's name as snapshots report it.
    const NAME: &'static CStr;
    /// What the probe calls: a pointer to the agent's `MimallocCalls`, the
    /// allocator's `mallctl`, or null.
    fn calls() -> *const c_void {
        std::ptr::null()
    }
}

/// On Linux the system allocator is glibc's malloc.
impl Wrapped for System {
    const NAME: &'static CStr = c"glibc";
}

#[cfg(feature = "mimalloc")]
mod mimalloc_calls {
    use std::ffi::{c_int, c_void};

    extern "C" {
        fn mi_version() -> c_int;
        fn mi_process_info(
            elapsed_msecs: *mut usize,
            user_msecs: *mut usize,
            system_msecs: *mut usize,
            current_rss: *mut usize,
            peak_rss: *mut usize,
            current_commit: *mut usize,
            peak_commit: *mut usize,
            page_faults: *mut usize,
        );
        fn mi_collect(force: bool);
    }

    /// The agent's `MimallocCalls` (native/src/core/probes.h), field for field.
    #[repr(C)]
    struct Calls {
        version: unsafe extern "C" fn() -> c_int,
        process_info: unsafe extern "C" fn(*mut usize, *mut usize, *mut usize, *mut usize, *mut usize, *mut usize, *mut usize, *mut usize),
        collect: unsafe extern "C" fn(bool),
    }

    static CALLS: Calls = Calls { version: mi_version, process_info: mi_process_info, collect: mi_collect };

    impl super::Wrapped for mimalloc::MiMalloc {
        const NAME: &'static std::ffi::CStr = c"mimalloc";
        fn calls() -> *const c_void {
            (&CALLS as *const Calls).cast()
        }
    }
}

/// tikv-jemallocator's jemalloc is built with a `_rjem_` prefix; its
/// `mallctl` is what the agent's jemalloc probe reads statistics and purges
/// arenas with. The feature turns on jemalloc's statistics (`stats`), which
/// the per-arena dirty pages come from.
#[cfg(feature = "jemalloc")]
impl Wrapped for tikv_jemallocator::Jemalloc {
    const NAME: &'static CStr = c"jemalloc";
    fn calls() -> *const c_void {
        tikv_jemalloc_sys::mallctl as *const c_void
    }
}

#[cfg(any(feature = "tracing", all(feature = "tokio", tokio_unstable)))]
mod polls;
#[cfg(any(feature = "tracing", all(feature = "tokio", tokio_unstable)))]
mod sites;
#[cfg(any(feature = "tracing", all(feature = "tokio", tokio_unstable)))]
mod task_map;
#[cfg(all(feature = "tokio", tokio_unstable))]
mod tokio_hooks;
#[cfg(feature = "tracing")]
mod tokio_layer;
#[cfg(all(feature = "tokio", tokio_unstable))]
pub use tokio_hooks::runtime_hooks;
#[cfg(feature = "tracing")]
pub use tokio_layer::{layer, TaskLayer, TokioTasks};

/// Set once the agent was asked to start; read on every allocation.
static STARTED: AtomicBool = AtomicBool::new(false);

#[cold]
fn start<A: Wrapped>() {
    if STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    // The agent allocates with the C library's malloc, never through this
    // allocator, so starting it here cannot recurse.
    unsafe { leakscope_crate_start(A::NAME.as_ptr(), A::calls()) };
}

/// A global allocator that reports every allocation and free to leakscope's
/// agent and then does what `A` does.
pub struct Tracked<A> {
    inner: A,
}

impl<A> Tracked<A> {
    pub const fn new(inner: A) -> Self {
        Tracked { inner }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

#[inline(always)]
fn ensure_started<A: Wrapped>() {
    if !STARTED.load(Ordering::Relaxed) {
        start::<A>();
    }
}

/// A block the wrapped allocator returned, reported unless it is null.
#[inline(always)]
unsafe fn reported(block: *mut u8, size: usize) -> *mut u8 {
    if !block.is_null() {
        leakscope_crate_alloc(block.cast(), size);
    }
    block
}

unsafe impl<A: Wrapped> GlobalAlloc for Tracked<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ensure_started::<A>();
        reported(self.inner.alloc(layout), layout.size())
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ensure_started::<A>();
        reported(self.inner.alloc_zeroed(layout), layout.size())
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // Before the allocator may hand the address to another thread.
        leakscope_crate_free(block.cast(), layout.size());
        self.inner.dealloc(block, layout);
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ensure_started::<A>();
        leakscope_crate_free(block.cast(), layout.size());
        let moved = self.inner.realloc(block, layout, new_size);
        if moved.is_null() {
            leakscope_crate_alloc(block.cast(), layout.size()); // failed: the old block is still live
        } else {
            leakscope_crate_alloc(moved.cast(), new_size);
        }
        moved
    }
}
