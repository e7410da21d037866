//! The tasks being polled on this thread, innermost last.
//!
//! The innermost is the parent of a task spawned now, and the end of a poll
//! finds its task here without a lookup. The tracing layer notes each entered
//! task span (keyed by span id); the runtime hooks note each poll (keyed by
//! Tokio's task id). An entry for a task already being polled here (user
//! code entering `Span::current()` again) does not begin or end a poll.
//! Beyond MAX_DEPTH entries the callers fall back to looking tasks up.

// Shared by the layer and the hooks; with only one of them built, some of
// this goes unused.
#![cfg_attr(not(all(feature = "tracing", feature = "tokio", tokio_unstable)), allow(dead_code))]

use std::cell::Cell;

const MAX_DEPTH: usize = 16;

#[derive(Clone, Copy)]
pub(crate) struct Entered {
    /// The span id (layer) or Tokio task id (hooks) the entry was noted by.
    key: u64,
    pub(crate) task: u64,
    /// This entry began a poll, and its end ends it.
    pub(crate) polls: bool,
    /// The task finished during this poll: it completes once the poll ends.
    pub(crate) finished: bool,
}

const NONE: Entered = Entered { key: 0, task: 0, polls: false, finished: false };

pub(crate) struct Stack {
    entries: [Cell<Entered>; MAX_DEPTH],
    depth: Cell<usize>,
}

thread_local! {
    pub(crate) static STACK: Stack = const { Stack { entries: [const { Cell::new(NONE) }; MAX_DEPTH], depth: Cell::new(0) } };
}

impl Stack {
    /// The task being polled innermost on this thread, or 0.
    pub(crate) fn polling(&self) -> u64 {
        (0..self.depth.get()).rev().map(|i| self.entries[i].get().task).find(|&task| task != 0).unwrap_or(0)
    }

    /// Notes an entry; true when its task's poll begins now.
    pub(crate) fn push(&self, key: u64, task: u64) -> bool {
        let depth = self.depth.get();
        let nested = (0..depth).any(|i| self.entries[i].get().task == task);
        if depth == MAX_DEPTH {
            return !nested; // not noted: its end looks the task up
        }
        self.entries[depth].set(Entered { key, task, polls: !nested, finished: false });
        self.depth.set(depth + 1);
        !nested
    }

    /// Takes the innermost entry of `key` off (ends are almost always the
    /// innermost); None when it was never noted.
    pub(crate) fn pop(&self, key: u64) -> Option<Entered> {
        let depth = self.depth.get();
        let at = (0..depth).rev().find(|&i| self.entries[i].get().key == key)?;
        let entered = self.entries[at].get();
        for i in at..depth - 1 {
            self.entries[i].set(self.entries[i + 1].get());
        }
        self.depth.set(depth - 1);
        Some(entered)
    }

    /// Marks the poll of `key` going on here as its task's last; false when
    /// no such poll is noted on this thread.
    pub(crate) fn finish(&self, key: u64) -> bool {
        let Some(at) = (0..self.depth.get()).rev().find(|&i| self.entries[i].get().key == key) else {
            return false;
        };
        let entry = &self.entries[at];
        entry.set(Entered { finished: true, ..entry.get() });
        true
    }
}
