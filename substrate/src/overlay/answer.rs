//! Answering a take only once it cannot be undone. The candidate that
//! takes tuples removes them from its store, then sends them down a chain
//! through the peers holding copies ([`Msg::Remove`]): each drops its
//! copies and tombstones the ids, and the last answers the asker
//! ([`Msg::Taken`]), which tells the earlier links that it has the
//! answer ([`Msg::Answered`]).
//!
//! Why a chain: a SIGKILLed peer loses what it had not yet written to its
//! sockets. A candidate that answered the asker and told its replicas in
//! the same turn could lose the tuple (the replicas heard, the asker did
//! not) or give it twice (the asker heard, a replica adopted its copy).
//! Along the chain a crash leaves either a copy and no answer (the asker's
//! query asks again, and finds the copy) or the answer on its way, never
//! both.
//!
//! A large tuple goes down the chain named by its id only
//! ([`super::msg::Carried::Known`]): each link is a replica holding a copy,
//! and the last answers with its own copy. A link that holds no copy of
//! such a tuple does nothing and asks the taker for the chain again with
//! every tuple whole ([`Msg::Resend`]); should the taker be gone by then,
//! the copies the chain did not reach stay, and the asker's query, which
//! sees the taker gone, asks again and finds them.
//!
//! Each link that passed the chain on keeps it until the asker has the
//! answer; when
//! the view loses a link after it, it sends the chain again along the
//! holders it now sees, or answers itself when none is left. The asker
//! drops a second answer of the same take (a chain sent again after its
//! last link had answered and died), known by the take's first tuple id,
//! for [`super::Config::tombstone_ms`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::msg::{Carried, Chain, Wire};
use super::{Msg, OpId, Peer, TupleId};

/// Takes answered at this asker remembered at most (the oldest go first).
const MAX_ANSWERS: usize = 1 << 16;

/// A chain this peer passed on and that is not answered yet.
#[derive(Debug)]
pub(super) struct Passing {
    tuples: Vec<Wire>,
    /// The link it went to, and the chain as it went there.
    next: u64,
    chain: Chain,
    since: u64,
}

/// The chains this peer passed on, by the first tuple id of their take.
pub(super) type Chains = BTreeMap<TupleId, Passing>;

/// The takes answered at this asker, by their first tuple id.
#[derive(Debug, Default)]
pub(super) struct Answers {
    seen: BTreeSet<TupleId>,
    order: VecDeque<(u64, TupleId)>,
}

impl Answers {
    /// Records the answer of the take whose first tuple is `first`; false
    /// if that take was answered before (within `keep_ms`).
    fn first_time(&mut self, first: TupleId, now: u64, keep_ms: u64) -> bool {
        while let Some(&(at, id)) = self.order.front() {
            if at.saturating_add(keep_ms) > now && self.order.len() < MAX_ANSWERS {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&id);
        }
        if !self.seen.insert(first) {
            return false;
        }
        self.order.push_back((now, first));
        true
    }
}

impl Peer {
    /// Answers the take `op` of `asker` with tuples this candidate has
    /// just removed from its store (and tombstoned): through the chain of
    /// the peers holding their copies, or at once if none does.
    pub(super) fn answer_take(&mut self, asker: u64, op: OpId, taken: Vec<Wire>, now: u64) {
        let rest = self.copy_holders(&taken, &[]);
        let chain = Chain {
            asker,
            op,
            by: self.id,
            rest,
            done: Vec::new(),
        };
        let name_from = self.config.name_from;
        let named = taken
            .iter()
            .map(|(t, _)| t.tuple.encoded_len_hint() >= name_from)
            .collect();
        self.pass_on(taken, named, chain, now);
    }

    /// A link of a chain: drops the copies here, and, holding some of the
    /// tuples as primary (it took their arc over meanwhile), adds its own
    /// replicas to the chain; then passes it on or answers. A tuple named
    /// by id is this peer's copy; without one, nothing is done here and
    /// the taker is asked for the chain again, whole.
    pub(super) fn on_remove(&mut self, carried: Vec<Carried>, mut chain: Chain, now: u64) {
        let held = |c: &Carried| match c {
            Carried::Whole(_) => true,
            Carried::Known(id) => self.copies.contains_key(id),
        };
        if !carried.iter().all(held) {
            if let Some(first) = carried.first() {
                let first = first.id();
                self.send(chain.by, Msg::Resend { first });
            }
            return;
        }
        // Named as the taker named them: a chain sent again whole stays
        // whole. An id named twice (no peer sends that) finds its copy
        // gone the second time and goes once.
        let (tuples, named): (Vec<Wire>, Vec<bool>) = carried
            .into_iter()
            .filter_map(|c| match c {
                Carried::Whole(wire) => Some((wire, false)),
                Carried::Known(id) => self.drop_copy(id).map(|(tagged, expires_at)| {
                    let ttl = expires_at.map(|e| e.saturating_sub(now));
                    ((tagged, ttl), true)
                }),
            })
            .unzip();
        let mut primary = false;
        for (tuple, _) in &tuples {
            self.tombstone(tuple.id, now);
            primary |= tuple.take_from(&mut self.store, now);
        }
        if primary {
            for s in self.successors.clone() {
                if !chain.done.contains(&s) && !chain.rest.contains(&s) {
                    chain.rest.push(s);
                }
            }
        }
        self.pass_on(tuples, named, chain, now);
    }

    /// The asker has the answer of the take whose first tuple is `first`.
    pub(super) fn on_answered(&mut self, first: TupleId) {
        self.passing.remove(&first);
    }

    /// A link after this taker held no copy of a tuple the chain named by
    /// id: the chain goes again, every tuple whole, from its next link on.
    pub(super) fn on_resend(&mut self, from: u64, first: TupleId, now: u64) {
        let Some(passing) = self.passing.get(&first) else {
            return;
        };
        let on_path = passing.next == from || passing.chain.rest.contains(&from);
        if passing.chain.by != self.id || !on_path {
            return;
        }
        let passing = self.passing.remove(&first).expect("listed");
        let mut chain = passing.chain;
        chain.rest.insert(0, passing.next);
        chain.done.retain(|&l| l != self.id);
        let whole = vec![false; passing.tuples.len()];
        self.pass_on(passing.tuples, whole, chain, now);
    }

    /// An answer to a take arrived: its chain's `links` hear it, and
    /// whether it is heard for the first time (not a chain's second
    /// answer) is returned.
    pub(super) fn first_answer(&mut self, tuples: &[Wire], links: Vec<u64>, now: u64) -> bool {
        let Some((first, _)) = tuples.first() else {
            return true;
        };
        let first = first.id;
        for link in links {
            self.send(link, Msg::Answered { first });
        }
        let keep_ms = self.config.tombstone_ms;
        self.answers.first_time(first, now, keep_ms)
    }

    /// After a view change: a chain that lost a link after this one goes
    /// again along the holders this peer sees now.
    pub(super) fn resend_chains(&mut self, now: u64) {
        let view = &self.view;
        let broken: Vec<TupleId> = self
            .passing
            .iter()
            .filter(|(_, p)| {
                let links = std::iter::once(&p.next).chain(&p.chain.rest);
                links.into_iter().any(|&l| !view.contains(l))
            })
            .map(|(&first, _)| first)
            .collect();
        for first in broken {
            let passing = self.passing.remove(&first).expect("listed");
            let mut chain = passing.chain;
            let (id, view) = (self.id, &self.view);
            chain.done.retain(|&l| l != id && view.contains(l));
            let mut rest: Vec<u64> = std::iter::once(passing.next)
                .chain(chain.rest)
                .filter(|&l| view.contains(l))
                .collect();
            for holder in self.copy_holders(&passing.tuples, &chain.done) {
                if !rest.contains(&holder) {
                    rest.push(holder);
                }
            }
            chain.rest = rest;
            let whole = vec![false; passing.tuples.len()];
            self.pass_on(passing.tuples, whole, chain, now);
        }
    }

    /// Forgets chains unanswered for a tombstone's life: past it a late
    /// copy could come back anyway.
    pub(super) fn expire_chains(&mut self, now: u64) {
        let keep_ms = self.config.tombstone_ms;
        self.passing
            .retain(|_, p| p.since.saturating_add(keep_ms) > now);
    }

    /// When the oldest chain kept here is forgotten.
    pub(super) fn chains_due(&self) -> Option<u64> {
        let oldest = self.passing.values().map(|p| p.since).min()?;
        Some(oldest.saturating_add(self.config.tombstone_ms))
    }

    /// Sends the chain to its next live link, keeping it until answered,
    /// the tuples `named` by their id only; with no link left, answers the
    /// asker and the earlier links.
    fn pass_on(&mut self, tuples: Vec<Wire>, named: Vec<bool>, mut chain: Chain, now: u64) {
        let (id, view) = (self.id, &self.view);
        chain.rest.retain(|&l| l != id && view.contains(l));
        let first = tuples.first().map(|(t, _)| t.id);
        if chain.rest.is_empty() {
            let (op, by, links) = (chain.op, chain.by, chain.done);
            self.send(
                chain.asker,
                Msg::Taken {
                    op,
                    by,
                    tuples,
                    links,
                },
            );
            return;
        }
        let next = chain.rest.remove(0);
        chain.done.push(id);
        let carried = tuples
            .iter()
            .zip(named)
            .map(|(wire, named)| match named {
                true => Carried::Known(wire.0.id),
                false => Carried::Whole(wire.clone()),
            })
            .collect();
        if let Some(first) = first {
            let passing = Passing {
                tuples,
                next,
                chain: chain.clone(),
                since: now,
            };
            self.passing.insert(first, passing);
        }
        self.send(
            next,
            Msg::Remove {
                tuples: carried,
                chain,
            },
        );
    }

    /// The peers other than this one that hold copies of `tuples` in this
    /// view (their owners and replicas), except those in `skip`.
    fn copy_holders(&mut self, tuples: &[Wire], skip: &[u64]) -> Vec<u64> {
        let mut holders = Vec::new();
        let mut last: Option<(&[crate::Value], u64)> = None;
        for (tuple, _) in tuples {
            let fields = tuple.tuple.fields();
            let index = self.keyspace.index_next_to(fields, last);
            if last
                .replace((fields, index))
                .is_some_and(|(_, before)| before == index)
            {
                continue;
            }
            for to in self.view.replicas(index, self.config.replicas) {
                if to != self.id && !skip.contains(&to) && !holders.contains(&to) {
                    holders.push(to);
                }
            }
        }
        holders
    }
}
