//! The tuple table: the stored tuples, indexed for oldest-first lookups.
//!
//! Every tuple gets a global sequence number when it is written (`seq`: a
//! smaller one is older). Tuples live in buckets keyed by their arity and the
//! hash of their first value (see [`super::hash::index_key`]), each bucket
//! ordered by `seq`. Per arity, the buckets are listed by the `seq` of their
//! oldest tuple (their head), so that a template whose first field is not an
//! actual value walks the tuples of its arity oldest first by merging the
//! buckets' runs, and an indexed `in` touches only its bucket and this small
//! list, never a structure as large as the whole store. Tuples with a TTL are
//! also listed by expiry time. A table made [`Table::with_exact_index`] also
//! lists every tuple under its arity and last value, so that an exact template (every field an actual value: the
//! overlay asks "is this very tuple here?" on every write it adopts) finds
//! its tuple, or its absence, without walking a bucket that may hold every
//! task of a job.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::ops::ControlFlow;

use super::hash::{FastMap, index_key};
use crate::template::Template;
use crate::tuple::{Tuple, Value};

/// A stored tuple and when it expires (ms on the caller's clock).
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub tuple: Tuple,
    pub expires_at: Option<u64>,
}

impl Stored {
    pub fn live(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// A bucket: the tuples of one arity whose first values share a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct BucketKey {
    pub arity: usize,
    pub hash: u64,
}

/// Where a stored tuple is: its bucket and its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub key: BucketKey,
    pub seq: u64,
}

/// The tuples of one bucket, ordered by `seq`. Tuples arrive at the back
/// (new) and mostly leave at the front (oldest first), so a ring buffer beats
/// a tree; taking one from the middle moves the shorter side, at most as many
/// entries as a scan had to check to find it there.
#[derive(Debug, Default)]
struct Bucket(VecDeque<(u64, Stored)>);

impl Bucket {
    fn first_key_value(&self) -> Option<(&u64, &Stored)> {
        self.0.front().map(|(seq, stored)| (seq, stored))
    }

    fn get(&self, seq: u64) -> Option<&Stored> {
        let at = self.0.partition_point(|&(s, _)| s < seq);
        self.0
            .get(at)
            .filter(|&&(s, _)| s == seq)
            .map(|(_, stored)| stored)
    }

    fn iter(&self) -> impl Iterator<Item = (&u64, &Stored)> {
        self.0.iter().map(|(seq, stored)| (seq, stored))
    }

    fn insert(&mut self, seq: u64, stored: Stored) {
        if self.0.back().is_none_or(|&(last, _)| last < seq) {
            self.0.push_back((seq, stored));
        } else {
            let at = self.0.partition_point(|&(s, _)| s < seq);
            self.0.insert(at, (seq, stored));
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Stored> {
        let at = if self.0.front().is_some_and(|&(first, _)| first == seq) {
            0
        } else {
            let at = self.0.partition_point(|&(s, _)| s < seq);
            self.0.get(at).filter(|&&(s, _)| s == seq)?;
            at
        };
        let (_, stored) = self.0.remove(at)?;
        // Give memory back after a bucket shrinks a lot.
        if self.0.capacity() > 64 && self.0.len() < self.0.capacity() / 4 {
            self.0.shrink_to(self.0.len() * 2);
        }
        Some(stored)
    }
}

/// The slots listed under one exact key: almost always one.
#[derive(Debug)]
enum Slots {
    One(Slot),
    Many(Vec<Slot>),
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    buckets: FastMap<BucketKey, Bucket>,
    /// Every slot by [`exact_key`] of its tuple, when the table keeps that
    /// index ([`Table::with_exact_index`]).
    exact: Option<FastMap<u64, Slots>>,
    /// Per arity: (seq of the bucket's oldest tuple, bucket hash).
    heads: FastMap<usize, BTreeSet<(u64, u64)>>,
    expiries: BTreeSet<(u64, u64, BucketKey)>,
    len: usize,
}

/// The bucket of a tuple.
pub(crate) fn tuple_key(tuple: &Tuple) -> BucketKey {
    BucketKey {
        arity: tuple.len(),
        hash: index_key(tuple.len(), tuple.get(0)),
    }
}

/// The key of a tuple in [`Table::exact`]: its arity and last value.
fn exact_key(tuple: &Tuple) -> u64 {
    index_key(tuple.len(), tuple.fields().last())
}

/// The [`exact_key`] of the tuple an exact template (a field or more, every
/// one an actual value) stands for.
fn exact_template_key(template: &Template) -> Option<u64> {
    let fields = template.fields();
    if fields.is_empty() || !fields.iter().all(|f| f.actual().is_some()) {
        return None;
    }
    Some(index_key(
        fields.len(),
        fields.last().and_then(|f| f.actual()),
    ))
}

/// Lists `slot` under `key`.
fn list(exact: &mut FastMap<u64, Slots>, key: u64, slot: Slot) {
    match exact.entry(key) {
        Entry::Vacant(e) => {
            e.insert(Slots::One(slot));
        }
        Entry::Occupied(mut e) => match e.get_mut() {
            Slots::One(first) => {
                let first = *first;
                e.insert(Slots::Many(vec![first, slot]));
            }
            Slots::Many(slots) => slots.push(slot),
        },
    }
}

/// Takes `slot` off the list under `key`.
fn unlist(exact: &mut FastMap<u64, Slots>, key: u64, slot: Slot) {
    let Entry::Occupied(mut e) = exact.entry(key) else {
        return;
    };
    match e.get_mut() {
        Slots::One(_) => {
            e.remove();
        }
        Slots::Many(slots) => {
            slots.retain(|s| *s != slot);
            if let [only] = slots[..] {
                e.insert(Slots::One(only));
            }
        }
    }
}

/// The index key shared by every tuple `template` can match, if there is one
/// (its first field is an actual value, or it has no fields).
pub(crate) fn template_key(template: &Template) -> Option<u64> {
    match template.fields().first() {
        None => Some(index_key(0, None)),
        Some(field) => field.actual().map(|v| index_key(template.len(), Some(v))),
    }
}

impl Table {
    /// An empty table that also keeps the exact index.
    pub fn with_exact_index() -> Table {
        Table {
            exact: Some(FastMap::default()),
            ..Table::default()
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, slot: Slot, stored: Stored) {
        if let Some(at) = stored.expires_at {
            self.expiries.insert((at, slot.seq, slot.key));
        }
        if let Some(exact) = &mut self.exact {
            list(exact, exact_key(&stored.tuple), slot);
        }
        let bucket = self.buckets.entry(slot.key).or_default();
        let old_head = bucket.first_key_value().map(|(&seq, _)| seq);
        bucket.insert(slot.seq, stored);
        if old_head.is_none_or(|head| slot.seq < head) {
            let heads = self.heads.entry(slot.key.arity).or_default();
            if let Some(head) = old_head {
                heads.remove(&(head, slot.key.hash));
            }
            heads.insert((slot.seq, slot.key.hash));
        }
        self.len += 1;
    }

    pub fn remove(&mut self, slot: Slot) -> Option<Stored> {
        let bucket = self.buckets.get_mut(&slot.key)?;
        let was_head = bucket
            .first_key_value()
            .is_some_and(|(&seq, _)| seq == slot.seq);
        let stored = bucket.remove(slot.seq)?;
        if was_head {
            let new_head = bucket.first_key_value().map(|(&seq, _)| seq);
            if new_head.is_none() {
                self.buckets.remove(&slot.key);
            }
            let arity = slot.key.arity;
            let heads = self.heads.get_mut(&arity).expect("a bucket has its head");
            heads.remove(&(slot.seq, slot.key.hash));
            match new_head {
                Some(head) => {
                    heads.insert((head, slot.key.hash));
                }
                None if heads.is_empty() => {
                    self.heads.remove(&arity);
                }
                None => {}
            }
        }
        if let Some(at) = stored.expires_at {
            self.expiries.remove(&(at, slot.seq, slot.key));
        }
        if let Some(exact) = &mut self.exact {
            unlist(exact, exact_key(&stored.tuple), slot);
        }
        self.len -= 1;
        Some(stored)
    }

    /// Calls `check` on the slots listed under an exact key, oldest first.
    fn visit_exact<'a, B>(
        &'a self,
        key: u64,
        check: &mut impl FnMut(Slot, &'a Stored) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let mut one = |slot: Slot| {
            let stored = self.buckets.get(&slot.key).and_then(|b| b.get(slot.seq));
            stored.map_or(ControlFlow::Continue(()), |stored| check(slot, stored))
        };
        match self.exact.as_ref().and_then(|exact| exact.get(&key)) {
            None => ControlFlow::Continue(()),
            Some(Slots::One(slot)) => one(*slot),
            Some(Slots::Many(slots)) => {
                let mut slots = slots.clone();
                slots.sort_unstable_by_key(|slot| slot.seq);
                slots.into_iter().try_for_each(one)
            }
        }
    }

    /// Calls `visit` on every live tuple matching `template`, oldest first,
    /// until it breaks. Looks only at the template's bucket when it has a key,
    /// else merges the buckets of its arity.
    pub fn visit<'a, B>(
        &'a self,
        template: &Template,
        now: u64,
        mut visit: impl FnMut(Slot, &'a Stored) -> ControlFlow<B>,
    ) -> Option<B> {
        let mut check = |slot: Slot, stored: &'a Stored| {
            if stored.live(now) && template.matches(&stored.tuple) {
                visit(slot, stored)
            } else {
                ControlFlow::Continue(())
            }
        };
        let arity = template.len();
        if let Some(key) = exact_template_key(template).filter(|_| self.exact.is_some()) {
            return match self.visit_exact(key, &mut check) {
                ControlFlow::Break(b) => Some(b),
                ControlFlow::Continue(()) => None,
            };
        }
        let flow = match template_key(template) {
            Some(hash) => {
                let key = BucketKey { arity, hash };
                self.buckets
                    .get(&key)
                    .map_or(ControlFlow::Continue(()), |b| {
                        b.iter()
                            .try_for_each(|(&seq, stored)| check(Slot { key, seq }, stored))
                    })
            }
            None => self.merge(arity, &mut check),
        };
        match flow {
            ControlFlow::Break(b) => Some(b),
            ControlFlow::Continue(()) => None,
        }
    }

    /// Walks every tuple of `arity` oldest first: a k-way merge of the
    /// buckets, each let in only once the walk reaches its head.
    fn merge<'a, B>(
        &'a self,
        arity: usize,
        check: &mut impl FnMut(Slot, &'a Stored) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let Some(heads) = self.heads.get(&arity) else {
            return ControlFlow::Continue(());
        };
        let mut waiting = heads.iter().peekable();
        let mut runs = Vec::new();
        let mut next: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        loop {
            while let Some(&&(head, hash)) = waiting.peek() {
                if next.peek().is_some_and(|Reverse((seq, _))| *seq < head) {
                    break;
                }
                waiting.next();
                let key = BucketKey { arity, hash };
                runs.push((key, self.buckets[&key].iter().peekable()));
                next.push(Reverse((head, runs.len() - 1)));
            }
            let Some(Reverse((seq, run))) = next.pop() else {
                return ControlFlow::Continue(());
            };
            let (key, entries) = &mut runs[run];
            let key = *key;
            let (_, stored) = entries.next().expect("a queued run has an entry");
            if let Some(&(&following, _)) = entries.peek() {
                next.push(Reverse((following, run)));
            }
            check(Slot { key, seq }, stored)?;
        }
    }

    /// The oldest live tuple matching `template`.
    pub fn first(&self, template: &Template, now: u64) -> Option<(Slot, &Stored)> {
        self.visit(template, now, |slot, stored| {
            ControlFlow::Break((slot, stored))
        })
    }

    /// Where the oldest live tuple whose fields are `head` then `last` is:
    /// an exact lookup that builds no template and copies nothing (through
    /// the exact index when the table keeps it, else the bucket of the
    /// first field).
    pub fn find(&self, head: &[Value], last: &Value, now: u64) -> Option<Slot> {
        let arity = head.len() + 1;
        let equal = |stored: &Stored| {
            stored.live(now)
                && stored
                    .tuple
                    .fields()
                    .split_last()
                    .is_some_and(|(l, h)| l == last && h == head)
        };
        if self.exact.is_some() {
            let key = index_key(arity, Some(last));
            let mut check = |slot, stored: &Stored| match equal(stored) {
                true => ControlFlow::Break(slot),
                false => ControlFlow::Continue(()),
            };
            return match self.visit_exact(key, &mut check) {
                ControlFlow::Break(slot) => Some(slot),
                ControlFlow::Continue(()) => None,
            };
        }
        let first = head.first().unwrap_or(last);
        let key = BucketKey {
            arity,
            hash: index_key(arity, Some(first)),
        };
        let bucket = self.buckets.get(&key)?;
        bucket
            .iter()
            .find(|(_, stored)| equal(stored))
            .map(|(&seq, _)| Slot { key, seq })
    }

    /// Removes every tuple whose expiry time is `now` or earlier.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(at, seq, key)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.remove(Slot { key, seq });
        }
    }

    pub fn next_expiry(&self) -> Option<u64> {
        self.expiries.first().map(|&(at, _, _)| at)
    }

    /// Calls `f` on every stored tuple (live or not yet collected), in no
    /// particular order, copying nothing.
    pub fn each(&self, mut f: impl FnMut(&Tuple)) {
        for bucket in self.buckets.values() {
            for (_, stored) in bucket.iter() {
                f(&stored.tuple);
            }
        }
    }

    /// Copies of every stored tuple (live or not yet collected), oldest
    /// first, with their expiry times.
    pub fn copies(&self) -> Vec<(Tuple, Option<u64>)> {
        let mut all: Vec<(u64, &Stored)> = self
            .buckets
            .values()
            .flat_map(|bucket| bucket.iter().map(|(&seq, stored)| (seq, stored)))
            .collect();
        all.sort_unstable_by_key(|&(seq, _)| seq);
        all.into_iter()
            .map(|(_, stored)| (stored.tuple.clone(), stored.expires_at))
            .collect()
    }

    /// Removes and returns the tuples `keep_out` selects, oldest first, with
    /// their expiry times.
    pub fn drain_matching(
        &mut self,
        mut keep_out: impl FnMut(&Tuple) -> bool,
    ) -> Vec<(Tuple, Option<u64>)> {
        let mut slots: Vec<Slot> = self
            .buckets
            .iter()
            .flat_map(|(&key, bucket)| {
                bucket
                    .iter()
                    .map(move |(&seq, stored)| (Slot { key, seq }, stored))
            })
            .filter(|(_, stored)| keep_out(&stored.tuple))
            .map(|(slot, _)| slot)
            .collect();
        slots.sort_unstable_by_key(|slot| slot.seq);
        slots
            .into_iter()
            .filter_map(|slot| self.remove(slot))
            .map(|stored| (stored.tuple, stored.expires_at))
            .collect()
    }
}
