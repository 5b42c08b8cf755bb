//! The ids a peer removed lately, each kept until its end (`tombstone_ms`
//! after its removal), so a late copy of one is not taken for a new tuple.
//!
//! Ends come in time order (the removal's `now` plus a constant), so they
//! wait in a queue, not a sorted set: a removal costs a hash insert and a
//! push, an expiry a pop and a hash removal. An id tombstoned again leaves
//! its earlier entry in the queue; that entry no longer matches the id's
//! end when it comes out and is skipped. Were `now` ever to step back, an
//! entry behind a later one would only be kept longer than its end
//! (removals stay remembered; they are never forgotten early).

use std::collections::{HashMap, VecDeque};

use super::TupleId;

#[derive(Debug, Default)]
pub(super) struct Tombstones {
    ends: HashMap<TupleId, u64>,
    queue: VecDeque<(u64, TupleId)>,
}

impl Tombstones {
    /// Remembers `id` as removed until `end`.
    pub(super) fn insert(&mut self, id: TupleId, end: u64) {
        self.ends.insert(id, end);
        self.queue.push_back((end, id));
    }

    pub(super) fn contains(&self, id: &TupleId) -> bool {
        self.ends.contains_key(id)
    }

    /// Forgets the ids whose end is `now` or earlier.
    pub(super) fn expire(&mut self, now: u64) {
        while let Some(&(end, id)) = self.queue.front() {
            if end > now {
                break;
            }
            self.queue.pop_front();
            if self.ends.get(&id) == Some(&end) {
                self.ends.remove(&id);
            }
        }
    }

    /// When [`Tombstones::expire`] has something to do next, at the latest.
    pub(super) fn next_end(&self) -> Option<u64> {
        self.queue.front().map(|&(end, _)| end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64) -> TupleId {
        TupleId { origin: 1, seq }
    }

    #[test]
    fn ids_are_kept_until_their_end() {
        let mut tombstones = Tombstones::default();
        tombstones.insert(id(1), 10);
        tombstones.insert(id(2), 20);
        assert_eq!(tombstones.next_end(), Some(10));
        tombstones.expire(9);
        assert!(tombstones.contains(&id(1)) && tombstones.contains(&id(2)));
        tombstones.expire(10);
        assert!(!tombstones.contains(&id(1)) && tombstones.contains(&id(2)));
        assert_eq!(tombstones.next_end(), Some(20));
        tombstones.expire(20);
        assert!(!tombstones.contains(&id(2)));
        assert_eq!(tombstones.next_end(), None);
    }

    #[test]
    fn an_id_tombstoned_again_lives_to_its_new_end() {
        let mut tombstones = Tombstones::default();
        tombstones.insert(id(1), 10);
        tombstones.insert(id(1), 30);
        tombstones.expire(10);
        assert!(tombstones.contains(&id(1)));
        tombstones.expire(30);
        assert!(!tombstones.contains(&id(1)));
    }

    #[test]
    fn a_clock_that_steps_back_only_keeps_ids_longer() {
        let mut tombstones = Tombstones::default();
        tombstones.insert(id(1), 50);
        tombstones.insert(id(2), 40);
        tombstones.expire(45);
        assert!(tombstones.contains(&id(2)), "behind a later end: kept");
        tombstones.expire(50);
        assert!(!tombstones.contains(&id(1)) && !tombstones.contains(&id(2)));
    }
}
