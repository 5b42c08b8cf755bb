//! The tuple table: the stored tuples, indexed for oldest-first lookups.
//!
//! Every tuple gets a global sequence number when it is written (`seq`: a
//! smaller one is older). Tuples live in buckets keyed by their index key
//! (arity and first value, see [`super::hash::index_key`]), each bucket
//! ordered by `seq`; a second map per arity lists every tuple's `seq` (and
//! its bucket), for templates whose first field is not an actual value.
//! Tuples with a TTL are also listed by expiry time.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use super::hash::{FastMap, index_key};
use crate::template::Template;
use crate::tuple::Tuple;

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

/// Where a stored tuple is: its bucket key and its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub key: u64,
    pub seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    buckets: FastMap<u64, BTreeMap<u64, Stored>>,
    by_arity: FastMap<usize, BTreeMap<u64, u64>>,
    expiries: BTreeSet<(u64, u64, u64)>,
    len: usize,
}

/// The index key of a tuple.
pub(crate) fn tuple_key(tuple: &Tuple) -> u64 {
    index_key(tuple.len(), tuple.get(0))
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
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, slot: Slot, stored: Stored) {
        if let Some(at) = stored.expires_at {
            self.expiries.insert((at, slot.seq, slot.key));
        }
        self.by_arity
            .entry(stored.tuple.len())
            .or_default()
            .insert(slot.seq, slot.key);
        self.buckets
            .entry(slot.key)
            .or_default()
            .insert(slot.seq, stored);
        self.len += 1;
    }

    pub fn remove(&mut self, slot: Slot) -> Option<Stored> {
        let bucket = self.buckets.get_mut(&slot.key)?;
        let stored = bucket.remove(&slot.seq)?;
        if bucket.is_empty() {
            self.buckets.remove(&slot.key);
        }
        let arity = stored.tuple.len();
        if let Some(seqs) = self.by_arity.get_mut(&arity) {
            seqs.remove(&slot.seq);
            if seqs.is_empty() {
                self.by_arity.remove(&arity);
            }
        }
        if let Some(at) = stored.expires_at {
            self.expiries.remove(&(at, slot.seq, slot.key));
        }
        self.len -= 1;
        Some(stored)
    }

    /// Calls `visit` on every live tuple matching `template`, oldest first,
    /// until it breaks. Looks only at the template's bucket when it has a key,
    /// else at the tuples of its arity.
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
        let flow = match template_key(template) {
            Some(key) => self
                .buckets
                .get(&key)
                .map_or(ControlFlow::Continue(()), |b| {
                    b.iter()
                        .try_for_each(|(&seq, stored)| check(Slot { key, seq }, stored))
                }),
            None => self
                .by_arity
                .get(&template.len())
                .map_or(ControlFlow::Continue(()), |seqs| {
                    seqs.iter().try_for_each(|(&seq, &key)| {
                        let stored = &self.buckets[&key][&seq];
                        check(Slot { key, seq }, stored)
                    })
                }),
        };
        match flow {
            ControlFlow::Break(b) => Some(b),
            ControlFlow::Continue(()) => None,
        }
    }

    /// The oldest live tuple matching `template`.
    pub fn first(&self, template: &Template, now: u64) -> Option<(Slot, &Stored)> {
        self.visit(template, now, |slot, stored| {
            ControlFlow::Break((slot, stored))
        })
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
