//! The crate inside a real process: this test binary's global allocator is
//! `Tracked<System>`, so the agent starts with its first allocation, and the
//! tests read what it recorded through its own socket, as `leakscope` does.
//! Spans and events are made with the shape Tokio gives its task
//! instrumentation (target, name, fields), by hand, so no `tokio_unstable`
//! build is needed here; fixtures/rust drives the real Tokio.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::span::Id;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

#[global_allocator]
static GLOBAL: leakscope::Tracked<System> = leakscope::Tracked::new(System);

/// The agent serves one client at a time.
static CLIENT: Mutex<()> = Mutex::new(());

/// Sends one request to this process's agent and returns its result.
fn ask(request: &str) -> Value {
    let _one = CLIENT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::var("LEAKSCOPE_SOCKET_DIR").unwrap_or_else(|_| format!("/tmp/leakscope-{}", unsafe { libc_getuid() }));
    let path = format!("{dir}/{}.sock", std::process::id());
    // The agent may not have noticed the previous test's client leave yet
    // (it answers "busy"), or may still be starting (no socket).
    for _ in 0..200 {
        let Ok(mut stream) = UnixStream::connect(&path) else {
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        };
        let mut lines = BufReader::new(stream.try_clone().unwrap());
        let mut greeting = String::new();
        lines.read_line(&mut greeting).unwrap();
        let greeting: Value = serde_json::from_str(&greeting).unwrap();
        if greeting["ok"] != true {
            assert!(greeting["error"].as_str().unwrap_or("").starts_with("busy"), "{greeting}");
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        }
        assert_eq!(greeting["result"]["mode"], "crate", "{greeting}");
        stream.write_all(request.as_bytes()).unwrap();
        stream.write_all(b"\n").unwrap();
        let mut reply = String::new();
        lines.read_line(&mut reply).unwrap();
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["ok"], true, "{reply}");
        return reply["result"].clone();
    }
    panic!("the agent did not answer at {path}");
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

/// All tasks (live and completed) at one site.
fn tasks_at(site: &str) -> (Value, Vec<Value>) {
    let result = ask(&format!(r#"{{"v":1,"id":1,"op":"tasks","tasks_state":"all","tasks_site":"{site}","tasks_sort":"id","idle_threshold_ms":1}}"#));
    let tasks = &result["tasks"];
    let aggregate = tasks["sites"].as_array().unwrap().iter().find(|s| s["site"] == site).cloned().unwrap_or(Value::Null);
    (aggregate, tasks["items"].as_array().unwrap().clone())
}

/// A span as Tokio makes one for each spawned task.
fn task_span(name: &str, file: &str, line: u32) -> tracing::Span {
    tracing::trace_span!(target: "tokio::task", parent: None, "runtime.spawn",
        kind = %"task", task.name = %name, task.id = 1u64, loc.file = file, loc.line = line, loc.col = 5u32)
}

/// A waker event as Tokio reports one.
fn waker(op: &'static str, span: &tracing::Span) {
    tracing::trace!(target: "tokio::task::waker", op = op, task.id = span.id().unwrap().into_u64());
}

/// Counts what reaches another layer beside leakscope's.
#[derive(Clone, Default)]
struct Counting {
    spans: Arc<AtomicUsize>,
    events: Arc<AtomicUsize>,
}

impl<S: tracing::Subscriber> Layer<S> for Counting {
    fn on_new_span(&self, _: &tracing::span::Attributes<'_>, _: &Id, _: Context<'_, S>) {
        self.spans.fetch_add(1, Ordering::Relaxed);
    }
    fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_task_span_is_a_task_its_polls_wakers_and_memory_are_counted_and_closing_it_completes_it() {
    let subscriber = tracing_subscriber::registry().with(leakscope::layer());
    tracing::subscriber::with_default(subscriber, || {
        let span = task_span("feed", "src/app.rs", 42);
        for _ in 0..2 {
            let _poll = span.enter();
            std::hint::black_box(vec![7u8; 4096]);
        }
        waker("waker.clone", &span);
        waker("waker.clone", &span);
        waker("waker.drop", &span);
        let (site, items) = tasks_at("src/app.rs:42");
        assert_eq!(site["kind"], "task");
        assert_eq!(site["live"], 1);
        assert_eq!(items.len(), 1);
        let task = &items[0];
        assert_eq!(task["name"], "feed");
        assert_eq!(task["state"], "idle");
        assert_eq!(task["polls"], 2);
        assert_eq!(task["wakers"], 1);
        assert!(task["allocated_bytes"].as_u64().unwrap() >= 2 * 4096, "{task}");

        waker("waker.wake", &span); // consumes the waker
        let (_, items) = tasks_at("src/app.rs:42");
        assert_eq!(items[0]["state"], "scheduled");
        assert_eq!(items[0]["wakes"], 1);
        assert_eq!(items[0]["wakers"], 0);

        drop(span);
        let (site, items) = tasks_at("src/app.rs:42");
        assert_eq!(site["live"], 0);
        assert_eq!(site["completed"], 1);
        assert_eq!(items[0]["state"], "completed");
    });
}

#[test]
fn a_task_spawned_during_a_poll_has_the_polled_task_as_parent_and_reentering_a_span_is_one_poll() {
    let subscriber = tracing_subscriber::registry().with(leakscope::layer());
    tracing::subscriber::with_default(subscriber, || {
        let outer = task_span("accept", "src/server.rs", 10);
        let inner;
        {
            let _poll = outer.enter();
            inner = task_span("connection", "src/server.rs", 20);
            let again = outer.enter(); // user code entering Span::current()
            drop(again);
            let (_, during) = tasks_at("src/server.rs:10");
            assert_eq!(during[0]["state"], "running", "still inside the first poll");
        }
        let (_, outer_items) = tasks_at("src/server.rs:10");
        let (_, inner_items) = tasks_at("src/server.rs:20");
        assert_eq!(outer_items[0]["polls"], 1);
        assert_eq!(outer_items[0]["state"], "idle");
        assert_eq!(inner_items[0]["parent_id"], outer_items[0]["id"]);
        drop(inner);
    });
}

#[test]
fn other_spans_and_events_are_left_to_the_other_layers_and_are_not_tasks() {
    let counting = Counting::default();
    let subscriber = tracing_subscriber::registry().with(leakscope::layer()).with(counting.clone());
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("request", path = "/quote");
        let _entered = request.enter();
        tracing::info!(target: "app", "served");
        let _task = task_span("feed", "src/other.rs", 7);
        assert_eq!(tasks_at("src/other.rs:7").0["live"], 1);
        // The app's own span is no task, at no site.
        let all = ask(r#"{"v":1,"id":2,"op":"tasks","tasks_state":"all","tasks_filter":"request"}"#);
        assert_eq!(all["tasks"]["items_total"], 0, "{all}");
    });
    assert_eq!(counting.spans.load(Ordering::Relaxed), 2, "the other layer saw the app's span and the task's");
    assert_eq!(counting.events.load(Ordering::Relaxed), 1, "the other layer saw the app's event");
}

#[test]
fn the_wrapped_allocator_keeps_contents_through_realloc_and_zeroes_on_request() {
    let tracked = leakscope::Tracked::new(System);
    unsafe {
        let layout = Layout::from_size_align(64, 16).unwrap();
        let zeroed = tracked.alloc_zeroed(layout);
        assert!(std::slice::from_raw_parts(zeroed, 64).iter().all(|&b| b == 0));
        zeroed.write_bytes(0xab, 64);
        let grown = tracked.realloc(zeroed, layout, 1 << 20);
        assert!(std::slice::from_raw_parts(grown, 64).iter().all(|&b| b == 0xab));
        assert_eq!(grown as usize % 16, 0);
        tracked.dealloc(grown, Layout::from_size_align(1 << 20, 16).unwrap());
    }
    let hello = ask(r#"{"v":1,"id":3,"op":"hello"}"#);
    assert_eq!(hello["mode"], "crate");
    assert_eq!(hello["pid"], std::process::id());
}

#[test]
fn poll_times_on_the_measured_tsc_clock_agree_with_the_monotonic_clock() {
    // The sampler measures the TSC's rate from its second tick (one a
    // second, from the agent's start at this process's first allocation).
    let calibrated = (0..40).any(|_| {
        let clock = ask(r#"{"v":1,"id":4,"op":"tasks","tasks_state":"all","tasks_site":"none"}"#)["tasks"]["poll_clock"].clone();
        clock == "tsc" || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }
    });
    let on_tsc = std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .is_ok_and(|name| name.trim() == "tsc");
    assert_eq!(calibrated, cfg!(target_arch = "x86_64") && on_tsc, "the poll clock is the TSC exactly where the kernel keeps time by it");
    let subscriber = tracing_subscriber::registry().with(leakscope::layer());
    tracing::subscriber::with_default(subscriber, || {
        let span = task_span("sleeper", "src/clock.rs", 3);
        let mut measured = Vec::new();
        for pause in [20u64, 40] {
            let started = std::time::Instant::now();
            let poll = span.enter();
            std::thread::sleep(std::time::Duration::from_millis(pause));
            drop(poll);
            measured.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let (site, items) = tasks_at("src/clock.rs:3");
        let task = &items[0];
        let longest = task["longest_poll_ms"].as_f64().unwrap();
        let busy = task["busy_ms"].as_f64().unwrap();
        // The agent's poll times sit inside the test's own brackets.
        assert!(longest <= measured[1] && longest >= measured[1] - 1.0, "{longest} ms against {measured:?}");
        let total: f64 = measured.iter().sum();
        assert!(busy <= total && busy >= total - 2.0, "{busy} ms against {measured:?}");
        // Buckets of log2 µs: 16.4–32.8 ms and 32.8–65.5 ms.
        let histogram: Vec<u64> = site["poll_histogram"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
        assert_eq!((histogram[14], histogram[15], histogram.iter().sum::<u64>()), (1, 1, 2), "{histogram:?}");
        drop(span);
    });
}

/// `tokio::spawn`, with the site Tokio reports for the task ("file:line").
#[cfg(all(feature = "tokio", tokio_unstable))]
#[track_caller]
fn spawn_noted<F>(future: F) -> (String, tokio::task::JoinHandle<F::Output>)
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let at = std::panic::Location::caller();
    (format!("{}:{}", at.file(), at.line()), tokio::spawn(future))
}

/// Tokio's runtime hooks, on a real multi-thread runtime.
#[cfg(all(feature = "tokio", tokio_unstable))]
#[test]
fn tokio_runtime_hooks_make_tasks_with_their_site_parent_polls_memory_and_end() {
    let runtime = leakscope::runtime_hooks(&mut tokio::runtime::Builder::new_multi_thread())
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (parent_at, child_at, child, ends_at, ended) = runtime.block_on(async {
        let (child_tx, child_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (parent_at, parent) = spawn_noted(async move {
            std::hint::black_box(vec![7u8; 4096]);
            let child = spawn_noted(async move {
                let _ = go_rx.await; // idle until told, or aborted
            });
            child_tx.send(child).ok();
            tokio::task::yield_now().await; // a second poll
        });
        parent.await.unwrap();
        let (child_at, child) = child_rx.await.unwrap();
        // Its last poll allocates 64 KiB and frees it as the task ends.
        let (ends_at, ends) = spawn_noted(async {
            tokio::task::yield_now().await;
            std::hint::black_box(vec![1u64; 8192]);
        });
        ends.await.unwrap();
        (parent_at, child_at, child, ends_at, go_tx)
    });
    let (parent_site, parents) = tasks_at(&parent_at);
    assert_eq!(parent_site["kind"], "task");
    assert_eq!((parent_site["live"].as_u64(), parent_site["completed"].as_u64()), (Some(0), Some(1)), "{parent_site}");
    assert_eq!(parents[0]["polls"], 2);
    assert!(parents[0]["allocated_bytes"].as_u64().unwrap() >= 4096, "{}", parents[0]);

    let (child_site, children) = tasks_at(&child_at);
    assert_eq!(child_site["live"], 1, "{child_site}");
    assert_eq!(children[0]["state"], "idle");
    assert_eq!(children[0]["parent_id"], parents[0]["id"]);
    assert_eq!(children[0]["name"], "", "the hooks carry no names");

    // The poll it ended in is counted, with what it allocated.
    let (ends_site, ends) = tasks_at(&ends_at);
    assert_eq!(ends_site["completed"], 1, "{ends_site}");
    assert_eq!(ends[0]["polls"], 2, "{}", ends[0]);
    assert!(ends[0]["allocated_bytes"].as_u64().unwrap() >= 65536, "{}", ends[0]);
    assert_eq!(ends_site["live_bytes"], 0, "{ends_site}");

    // Aborted while idle: it ends without another poll.
    child.abort();
    for _ in 0..100 {
        if tasks_at(&child_at).0["completed"] == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(tasks_at(&child_at).0["completed"], 1);
    drop(ended);
}

extern "C" {
    fn leakscope_task_spawn(kind: *const std::ffi::c_char, name: *const std::ffi::c_char, site: *const std::ffi::c_char, parent_id: u64) -> u64;
    fn leakscope_task_poll_begin(id: u64);
    fn leakscope_task_poll_end(id: u64);
    fn leakscope_task_complete(id: u64);
}

#[test]
fn site_counts_are_exact_from_more_threads_than_have_a_shard_of_their_own() {
    // The first 12 threads to count have a shard each; the rest share.
    const THREADS: u64 = 20;
    const TASKS: u64 = 5_000;
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..TASKS {
                    let id = unsafe { leakscope_task_spawn(c"task".as_ptr(), std::ptr::null(), c"src/many.rs:1".as_ptr(), 0) };
                    assert_ne!(id, 0);
                    for _ in 0..3 {
                        unsafe { leakscope_task_poll_begin(id) };
                        unsafe { leakscope_task_poll_end(id) };
                    }
                    unsafe { leakscope_task_complete(id) };
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|worker| worker.join().unwrap());
    let (site, _) = tasks_at("src/many.rs:1");
    assert_eq!(site["spawned"], THREADS * TASKS, "{site}");
    assert_eq!(site["completed"], THREADS * TASKS, "{site}");
    assert_eq!(site["polls"], 3 * THREADS * TASKS, "{site}");
    let histogram: u64 = site["poll_histogram"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(histogram, 3 * THREADS * TASKS);
}
