//! A task span's id (the layer) or a Tokio task id (the runtime hooks) →
//! the agent's task id, for the tasks alive now.
//!
//! Every poll, waker event and end of a Tokio task needs its task id. Kept
//! in the span's extensions, each would cost a registry lookup (a slab
//! reference taken and given back) and a lock; the hooks have nowhere else
//! to keep it. Here it is a hash and one or two loads. The table has a
//! fixed size and open addressing with short probes: a span it has no room
//! for keeps its task in the span's extensions instead, so a crowded table
//! costs the layer speed, never a task; the hooks leave such a task
//! untracked.
//!
//! Any thread may insert, find or remove; a key is inserted once (at its
//! task's spawn) and removed once (at its end).

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Never held: a probe ends here.
const EMPTY: u64 = 0;
/// Held by a span that closed: reusable, and a probe goes on past it.
const FREED: u64 = u64::MAX;
/// Being written: a probe goes on past it.
const WRITING: u64 = u64::MAX - 1;
/// Slots a probe looks at before it gives up.
const PROBES: usize = 32;

struct Slot {
    span: AtomicU64,
    task: AtomicU64,
}

pub(crate) struct TaskMap {
    slots: Box<[Slot]>,
}

/// tracing-subscriber's registry numbers a span by its slab slot: the low
/// 37 bits place the slot in its thread's shard, the 13 above name the
/// shard, and a generation comes last. It gives a closed span's slot to the
/// next span first, so a home taken from slot and shard (and not the
/// generation) is where a recent span was: a line still in the cache. Ids
/// numbered some other way still spread over the table, if less kindly.
const SLOT_BITS: u32 = 37;
const SHARD_MASK: u64 = 0x1FFF;

fn home(span: u64) -> u64 {
    let slot = span & ((1u64 << SLOT_BITS) - 1);
    let shard = (span >> SLOT_BITS) & SHARD_MASK;
    slot ^ shard.wrapping_mul(0x9E37_79B9)
}

impl TaskMap {
    /// A table of 2^bits slots (16 bytes each, zero pages until used).
    pub(crate) fn new(bits: u32) -> TaskMap {
        // Zeroed memory is EMPTY slots; asked for as zeroed, the allocator
        // hands out fresh pages that cost nothing until a span lands there.
        let slots = unsafe { Box::<[Slot]>::new_zeroed_slice(1usize << bits).assume_init() };
        TaskMap { slots }
    }

    fn usable(span: u64) -> bool {
        span != EMPTY && span != FREED && span != WRITING
    }

    /// The slots a span's probe visits, in order.
    fn probe(&self, span: u64) -> impl Iterator<Item = &Slot> {
        let home = home(span) as usize;
        let mask = self.slots.len() - 1;
        (0..PROBES.min(self.slots.len())).map(move |i| &self.slots[(home + i) & mask])
    }

    /// Notes a new span's task; false when there is no room near its home.
    pub(crate) fn insert(&self, span: u64, task: u64) -> bool {
        if !Self::usable(span) {
            return false;
        }
        for slot in self.probe(span) {
            let seen = slot.span.load(Ordering::Relaxed);
            if (seen == EMPTY || seen == FREED)
                && slot.span.compare_exchange(seen, WRITING, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            {
                // A reader that reads the new task also sees WRITING or later
                // in the slot's span (below), and so does not take it.
                fence(Ordering::Release);
                slot.task.store(task, Ordering::Relaxed);
                slot.span.store(span, Ordering::Release);
                return true;
            }
        }
        false
    }

    /// The slot holding a span, as seen now; None when the table does not have it.
    fn holding(&self, span: u64) -> Option<&Slot> {
        if !Self::usable(span) {
            return None;
        }
        for slot in self.probe(span) {
            match slot.span.load(Ordering::Acquire) {
                seen if seen == span => return Some(slot),
                EMPTY => return None,
                _ => {}
            }
        }
        None
    }

    /// The task of a span alive now, or None when the table does not have it.
    pub(crate) fn find(&self, span: u64) -> Option<u64> {
        let slot = self.holding(span)?;
        let task = slot.task.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        // Still this span's: the slot was not freed and taken again while the
        // task was read (span ids are not reused while a span lives, so the
        // same id means the same entry).
        (slot.span.load(Ordering::Relaxed) == span).then_some(task)
    }

    /// Forgets a closed span; its task, or None when the table did not have it.
    pub(crate) fn remove(&self, span: u64) -> Option<u64> {
        let slot = self.holding(span)?;
        let task = slot.task.load(Ordering::Relaxed);
        slot.span.compare_exchange(span, FREED, Ordering::Release, Ordering::Relaxed).is_ok().then_some(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_holds_and_forgets_what_closed() {
        let map = TaskMap::new(8);
        for span in 1..=100u64 {
            assert!(map.insert(span, span * 10));
        }
        for span in 1..=100u64 {
            assert_eq!(map.find(span), Some(span * 10));
        }
        assert_eq!(map.find(101), None);
        assert_eq!(map.remove(7), Some(70));
        assert_eq!(map.find(7), None);
        assert_eq!(map.remove(7), None);
        // The freed slot is taken again, and the others are still found past it.
        assert!(map.insert(1_000, 5));
        assert_eq!(map.find(1_000), Some(5));
        for span in (1..=100u64).filter(|&s| s != 7) {
            assert_eq!(map.find(span), Some(span * 10));
        }
    }

    #[test]
    fn a_full_neighbourhood_refuses_and_reserved_ids_are_never_held() {
        let map = TaskMap::new(4); // 16 slots, fewer than a probe's length
        let held = (1..=40u64).filter(|&span| map.insert(span, span)).count();
        assert_eq!(held, 16);
        for span in 1..=40u64 {
            let found = map.find(span);
            assert!(found.is_none() || found == Some(span));
        }
        assert!(!map.insert(FREED, 1));
        assert!(!map.insert(WRITING, 1));
        assert_eq!(map.find(EMPTY), None);
    }

    #[test]
    fn churn_from_many_threads_keeps_every_span_it_took() {
        // Threads whose live spans crowd one neighbourhood may be refused
        // (the layer then keeps the task in the span); a span the table took
        // is found with its own task until it is removed, and never after.
        let map = std::sync::Arc::new(TaskMap::new(12));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let map = map.clone();
                std::thread::spawn(move || {
                    let mut taken = std::collections::VecDeque::new();
                    for round in 0..20_000u64 {
                        let span = (t << 40) | (round + 1);
                        let took = map.insert(span, span ^ 0xABCD);
                        assert_eq!(map.find(span), took.then_some(span ^ 0xABCD));
                        taken.push_back((span, took));
                        if taken.len() > 16 {
                            let (old, took) = taken.pop_front().unwrap();
                            assert_eq!(map.find(old), took.then_some(old ^ 0xABCD));
                            assert_eq!(map.remove(old), took.then_some(old ^ 0xABCD));
                            assert_eq!(map.find(old), None);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
}
