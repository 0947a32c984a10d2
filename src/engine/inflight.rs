//! The pushes in flight, by ref.
//!
//! Refs come from one counter, and a push gets its ref as it is sent (a push buffered
//! until its topic is joined gets it when made, and is sent later). So pushes almost
//! always enter in ref order, and a channel answers them in that order: they live in a
//! queue indexed by `ref - base`, where finding a reply's push is an index, and replies
//! in order walk memory in order (a hash map of ten thousand pushes is a cache miss
//! per reply). Refs the queue skips (joins, leaves, heartbeats, pushes of other
//! requests) and pushes answered out of order leave empty slots, dropped once they
//! reach either end. A ref below the queue's start goes into a map. So that empty
//! slots never outweigh the pushes, a ref far past the queue's end, or a queue over
//! half empty, moves the queue's oldest pushes into the map (each push at most once).

use std::collections::VecDeque;

use super::pushes::PendingPush;
use crate::fxhash::FxHashMap;

/// Empty slots a new ref may open at the end of the queue; past that the queue's
/// pushes move to the map and the queue starts again at the new ref.
const MAX_GAP: u64 = 64;

/// Below this length the queue is never made denser.
const MIN_COMPACT: usize = 64;

/// The pushes in flight: a queue in ref order, and a map for the rest.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    /// Slot `i` holds the push with ref `base + i`, if it is in flight. Never an empty
    /// slot at either end.
    queue: VecDeque<Option<PendingPush>>,
    base: u64,
    /// Pushes in `queue`.
    in_queue: usize,
    map: FxHashMap<u64, PendingPush>,
}

impl InFlight {
    /// Records the push with ref `r` (refs are unique).
    pub(crate) fn insert(&mut self, r: u64, push: PendingPush) {
        if self.queue.is_empty() {
            self.base = r;
        }
        let end = self.base + self.queue.len() as u64;
        if r < self.base {
            self.map.insert(r, push);
            return;
        }
        if r < end {
            // A ref the queue skipped, sent now (a buffered push).
            let slot = &mut self.queue[(r - self.base) as usize];
            debug_assert!(slot.is_none(), "ref {r} is already in flight");
            if slot.replace(push).is_none() {
                self.in_queue += 1;
            }
            return;
        }
        if r - end > MAX_GAP {
            self.spill(self.queue.len());
            self.base = r;
        } else if r > end {
            self.queue.extend((end..r).map(|_| None));
        }
        self.queue.push_back(Some(push));
        self.in_queue += 1;
    }

    /// The push with ref `r`, if it is in flight.
    pub(crate) fn get(&self, r: u64) -> Option<&PendingPush> {
        if let Some(push) = self.slot(r).and_then(|i| self.queue[i].as_ref()) {
            return Some(push);
        }
        if self.map.is_empty() {
            None
        } else {
            self.map.get(&r)
        }
    }

    /// Whether the push with ref `r` is in flight.
    pub(crate) fn contains(&self, r: u64) -> bool {
        self.get(r).is_some()
    }

    /// Takes the push with ref `r` out, if it is in flight.
    pub(crate) fn remove(&mut self, r: u64) -> Option<PendingPush> {
        if r == self.base && matches!(self.queue.front(), Some(Some(_))) {
            // The oldest push: the common case, a reply in order.
            let push = self.queue.pop_front().flatten();
            self.in_queue -= 1;
            self.base += 1;
            self.trim();
            return push;
        }
        // (A ref within the queue's range may still be in the map: one spilled before
        // the queue emptied and started again below it.)
        let Some(i) = self.slot(r).filter(|&i| self.queue[i].is_some()) else {
            return if self.map.is_empty() {
                None
            } else {
                self.map.remove(&r)
            };
        };
        let push = self.queue[i].take()?;
        self.in_queue -= 1;
        self.trim();
        if self.queue.len() > MIN_COMPACT && self.in_queue * 2 < self.queue.len() {
            // Mostly empty slots: the oldest pushes (answered last, if ever) move to
            // the map until the rest is dense.
            let mut moved = 0;
            let mut live = self.in_queue;
            for slot in &self.queue {
                if self.queue.len() - moved <= 2 * live {
                    break;
                }
                moved += 1;
                if slot.is_some() {
                    live -= 1;
                }
            }
            self.spill(moved);
        }
        Some(push)
    }

    /// Pushes in flight.
    pub(crate) fn len(&self) -> usize {
        self.in_queue + self.map.len()
    }

    /// Every push in flight with its ref, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &PendingPush)> {
        let base = self.base;
        self.queue
            .iter()
            .enumerate()
            .filter_map(move |(i, p)| p.as_ref().map(|p| (base + i as u64, p)))
            .chain(self.map.iter().map(|(r, p)| (*r, p)))
    }

    /// Drops the empty slots at both ends.
    fn trim(&mut self) {
        while matches!(self.queue.front(), Some(None)) {
            self.queue.pop_front();
            self.base += 1;
        }
        while matches!(self.queue.back(), Some(None)) {
            self.queue.pop_back();
        }
    }

    /// The queue index of ref `r`, if it is within the queue.
    fn slot(&self, r: u64) -> Option<usize> {
        let i = r.checked_sub(self.base)?;
        (i < self.queue.len() as u64).then_some(i as usize)
    }

    /// Moves the first `n` slots' pushes into the map.
    fn spill(&mut self, n: usize) {
        for (i, slot) in self.queue.drain(..n).enumerate() {
            if let Some(push) = slot {
                self.map.insert(self.base + i as u64, push);
                self.in_queue -= 1;
            }
        }
        self.base += n as u64;
        while matches!(self.queue.front(), Some(None)) {
            self.queue.pop_front();
            self.base += 1;
        }
        if self.queue.is_empty() && self.queue.capacity() > MIN_COMPACT {
            self.queue = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pushes::ReplyTo;
    use crate::message::Topic;
    use std::collections::BTreeMap;
    use std::time::Instant;

    fn push(r: u64) -> PendingPush {
        PendingPush {
            topic: Topic::from("room:1"),
            reply_to: ReplyTo::Callback,
            deadline: (Instant::now(), r),
        }
    }

    fn refs(f: &InFlight) -> Vec<u64> {
        let mut v: Vec<u64> = f.iter().map(|(r, _)| r).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn pushes_in_order_live_in_the_queue_and_leave_it_empty() {
        let mut f = InFlight::default();
        for r in 1..=1000 {
            f.insert(r, push(r));
        }
        assert_eq!((f.len(), f.queue.len(), f.map.len()), (1000, 1000, 0));
        for r in 1..=1000 {
            assert_eq!(f.remove(r).map(|p| p.deadline.1), Some(r));
            assert!(!f.contains(r));
        }
        assert_eq!((f.len(), f.queue.len(), f.map.len()), (0, 0, 0));
    }

    #[test]
    fn a_straggler_and_far_refs_move_to_the_map_and_the_queue_stays_dense() {
        let mut f = InFlight::default();
        // Push 1 is never answered; 10,000 later ones are, in order, ten in flight.
        f.insert(1, push(1));
        for r in 2..10_002 {
            f.insert(r, push(r));
            if r >= 12 {
                assert!(f.remove(r - 10).is_some());
            }
            assert!(f.queue.len() <= 2 * f.in_queue + MIN_COMPACT + 1);
        }
        for r in 9_992..10_002 {
            assert!(f.remove(r).is_some());
        }
        assert_eq!(refs(&f), [1]);
        assert_eq!(f.get(1).map(|p| p.deadline.1), Some(1));
        // A ref far past the end starts the queue again; the old pushes are still found.
        f.insert(20_000, push(20_000));
        f.insert(20_001, push(20_001));
        assert_eq!(refs(&f), [1, 20_000, 20_001]);
        assert!(f.queue.len() <= 2);
        // A ref below the queue's start (a push buffered long ago, sent now).
        f.insert(15, push(15));
        assert_eq!(f.get(15).map(|p| p.deadline.1), Some(15));
        assert_eq!(refs(&f), [1, 15, 20_000, 20_001]);
        for r in [20_001, 1, 15, 20_000] {
            assert!(f.remove(r).is_some(), "{r}");
            assert!(f.remove(r).is_none(), "{r} twice");
        }
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn a_queue_started_again_below_a_ref_in_the_map_still_finds_it() {
        let mut f = InFlight::default();
        f.insert(10, push(10));
        f.insert(200, push(200)); // far past the end: 10 moves to the map
        assert!(f.remove(200).is_some()); // the queue is empty
        for r in [5, 8, 12] {
            f.insert(r, push(r)); // the queue covers 5..=12, 10 included
        }
        assert_eq!(f.get(10).map(|p| p.deadline.1), Some(10));
        assert_eq!(refs(&f), [5, 8, 10, 12]);
        assert!(f.remove(10).is_some());
        assert!(f.get(10).is_none());
        assert_eq!(refs(&f), [5, 8, 12]);
    }

    /// Random inserts (mostly in order, with skipped refs and late ones) and removes
    /// (mostly in order), checked against a plain ordered map after every step.
    #[test]
    fn random_sequences_behave_like_a_map() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut f = InFlight::default();
            let mut model: BTreeMap<u64, ()> = BTreeMap::new();
            let mut next = 1u64;
            let mut held: Vec<u64> = Vec::new(); // refs made but not yet sent (buffered)
            for _ in 0..400 {
                match rand(10) {
                    0..=3 => {
                        let r = next;
                        next += 1 + if rand(8) == 0 { rand(200) } else { 0 };
                        if rand(10) == 0 {
                            held.push(r);
                        } else {
                            f.insert(r, push(r));
                            model.insert(r, ());
                        }
                    }
                    4 if !held.is_empty() => {
                        let r = held.swap_remove(rand(held.len() as u64) as usize);
                        f.insert(r, push(r));
                        model.insert(r, ());
                    }
                    5..=7 => {
                        // The oldest in flight (a reply in order).
                        if let Some((&r, _)) = model.iter().next() {
                            assert!(f.remove(r).is_some());
                            model.remove(&r);
                        }
                    }
                    _ => {
                        // Any ref, in flight or not.
                        let r = rand(next + 1);
                        assert_eq!(f.remove(r).is_some(), model.remove(&r).is_some(), "{r}");
                    }
                }
                assert_eq!(f.len(), model.len());
                assert_eq!(refs(&f), model.keys().copied().collect::<Vec<_>>());
                for &r in model.keys() {
                    assert_eq!(f.get(r).map(|p| p.deadline.1), Some(r));
                }
                for _ in 0..8 {
                    let r = rand(next + 2);
                    assert_eq!(f.get(r).is_some(), model.contains_key(&r), "{r}");
                }
                assert!(f.queue.front().is_none_or(Option::is_some));
                assert!(f.queue.back().is_none_or(Option::is_some));
            }
        }
    }
}
