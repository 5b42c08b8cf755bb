//! The asking side of `in`, `rd` and `scan`: ask every candidate peer,
//! accept the first offer and decline the rest, retry in a new round when
//! an accept fails or the accepted peer leaves, re-ask when the view
//! changes, give up at the deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use super::msg::Ask;
use super::{Msg, OpId, Peer, Reply, Tagged, TupleId};
use crate::store::ReservationId;
use crate::template::Template;

/// One client operation waiting for candidates.
#[derive(Debug)]
pub(super) struct Query {
    ask: Ask,
    template: Template,
    /// The template's keyspace cover: its candidates are their owners.
    ranges: Vec<RangeInclusive<u64>>,
    /// Only what candidates hold now (`wait_ms == Some(0)`): no deadline,
    /// the query ends when every candidate has answered.
    probe: bool,
    deadline: Option<u64>,
    round: u32,
    asked: BTreeSet<u64>,
    /// Asked in this round and not answered.
    waiting: BTreeSet<u64>,
    /// The peer whose offer was accepted, until it answers.
    accepted_at: Option<u64>,
    found: BTreeMap<TupleId, Tagged>,
}

impl Query {
    pub(super) fn accepting(&self) -> bool {
        self.accepted_at.is_some()
    }

    /// When the timer must look at this query.
    pub(super) fn due(&self) -> Option<u64> {
        self.deadline.filter(|_| self.accepted_at.is_none())
    }
}

impl Peer {
    pub(super) fn start(
        &mut self,
        op: OpId,
        ask: Ask,
        template: Template,
        wait_ms: Option<u64>,
        now: u64,
    ) {
        let ranges = self.keyspace.ranges_for(&template, self.config.max_ranges);
        let query = Query {
            ask,
            template,
            ranges,
            probe: wait_ms == Some(0),
            deadline: wait_ms.filter(|&w| w > 0).map(|w| now + w),
            round: 0,
            asked: BTreeSet::new(),
            waiting: BTreeSet::new(),
            accepted_at: None,
            found: BTreeMap::new(),
        };
        self.queries.insert(op, query);
        self.ask_all(op, now);
    }

    /// Asks every current candidate (again, in the query's current round).
    fn ask_all(&mut self, op: OpId, now: u64) {
        let Some(q) = self.queries.get(&op) else {
            return;
        };
        let candidates = self.view.owners_of(&q.ranges);
        self.ask_some(op, candidates, now);
    }

    fn ask_some(&mut self, op: OpId, peers: Vec<u64>, now: u64) {
        let Some(q) = self.queries.get_mut(&op) else {
            return;
        };
        let wait_ms = match q.probe {
            true => Some(0),
            false => q.deadline.map(|d| d.saturating_sub(now)),
        };
        let (round, ask, template) = (q.round, q.ask, q.template.clone());
        q.asked.extend(&peers);
        q.waiting.extend(&peers);
        for to in peers {
            let msg = Msg::Ask {
                op,
                round,
                ask,
                template: template.clone(),
                wait_ms,
            };
            self.send(to, msg);
        }
        self.maybe_finish(op);
    }

    pub(super) fn on_offer(&mut self, from: u64, op: OpId, round: u32, reservation: ReservationId) {
        let wanted = self
            .queries
            .get_mut(&op)
            .filter(|q| q.ask == Ask::Take && q.round == round && q.accepted_at.is_none());
        let Some(q) = wanted else {
            self.send(from, Msg::Decline { reservation });
            return;
        };
        q.accepted_at = Some(from);
        let others: Vec<u64> = q.asked.iter().copied().filter(|&p| p != from).collect();
        self.send(from, Msg::Accept { op, reservation });
        for to in others {
            self.send(to, Msg::Cancel { op });
        }
    }

    pub(super) fn on_taken(&mut self, op: OpId, tuple: Tagged) {
        if self.queries.remove(&op).is_some() {
            self.reply(op, Reply::Found(Some(tuple)));
        }
    }

    pub(super) fn on_accept_failed(&mut self, op: OpId, now: u64) {
        if let Some(q) = self.queries.get_mut(&op) {
            q.round += 1;
            q.accepted_at = None;
            q.asked.clear();
            q.waiting.clear();
            self.ask_all(op, now);
        }
    }

    pub(super) fn on_copies(&mut self, from: u64, op: OpId, round: u32, tuples: Vec<Tagged>) {
        let Some(q) = self.queries.get_mut(&op).filter(|q| q.round == round) else {
            return;
        };
        q.waiting.remove(&from);
        match q.ask {
            Ask::Read => {
                if let Some(first) = tuples.into_iter().next() {
                    let q = self.queries.remove(&op).expect("just seen");
                    self.reply(op, Reply::Found(Some(first)));
                    for to in q.asked {
                        self.send(to, Msg::Cancel { op });
                    }
                    return;
                }
            }
            Ask::Scan(_) => q.found.extend(tuples.into_iter().map(|t| (t.id, t))),
            Ask::Take | Ask::Subscribe => {}
        }
        self.maybe_finish(op);
    }

    pub(super) fn on_no_match(&mut self, from: u64, op: OpId, round: u32) {
        if let Some(q) = self.queries.get_mut(&op).filter(|q| q.round == round) {
            q.waiting.remove(&from);
            self.maybe_finish(op);
        }
    }

    /// Ends a query every candidate has answered without a match (a
    /// subscription lasts until unsubscribed).
    fn maybe_finish(&mut self, op: OpId) {
        if let Some(q) = self.queries.get(&op)
            && q.ask != Ask::Subscribe
            && q.waiting.is_empty()
            && q.accepted_at.is_none()
        {
            self.finish(op);
        }
    }

    fn finish(&mut self, op: OpId) {
        let Some(q) = self.queries.remove(&op) else {
            return;
        };
        let reply = match q.ask {
            Ask::Scan(limit) => Reply::Listed(q.found.into_values().take(limit).collect()),
            Ask::Take | Ask::Read => Reply::Found(None),
            Ask::Subscribe => Reply::Ended,
        };
        self.reply(op, reply);
        for to in q.waiting {
            self.send(to, Msg::Cancel { op });
        }
    }

    pub(super) fn on_notified(&mut self, op: OpId, tuple: Tagged) {
        if self
            .queries
            .get(&op)
            .is_some_and(|q| q.ask == Ask::Subscribe)
        {
            self.reply(op, Reply::Notified(tuple));
        }
    }

    /// Ends a subscription at every candidate.
    pub(super) fn unsubscribe(&mut self, op: OpId, subscription: OpId) {
        let is_subscription = self
            .queries
            .get(&subscription)
            .is_some_and(|q| q.ask == Ask::Subscribe);
        if let Some(q) = self
            .queries
            .remove(&subscription)
            .filter(|_| is_subscription)
        {
            for to in q.asked {
                self.send(to, Msg::Cancel { op: subscription });
            }
        }
        self.reply(op, Reply::Ended);
    }

    pub(super) fn expire_queries(&mut self, now: u64) {
        let late: Vec<OpId> = self
            .queries
            .iter()
            .filter(|(_, q)| q.due().is_some_and(|d| d <= now))
            .map(|(&op, _)| op)
            .collect();
        for op in late {
            self.finish(op);
        }
    }

    /// After a view change: forgets candidates that are gone, retries an
    /// accept whose peer is gone, asks new candidates.
    pub(super) fn reask(&mut self, now: u64) {
        let ops: Vec<OpId> = self.queries.keys().copied().collect();
        for op in ops {
            let q = self.queries.get_mut(&op).expect("listed");
            let view = &self.view;
            q.waiting.retain(|&p| view.contains(p));
            q.asked.retain(|&p| view.contains(p));
            if q.accepted_at.is_some_and(|p| !view.contains(p)) {
                self.on_accept_failed(op, now);
                continue;
            }
            if q.accepted_at.is_some() {
                continue;
            }
            let fresh: Vec<u64> = view
                .owners_of(&q.ranges)
                .into_iter()
                .filter(|p| !q.asked.contains(p))
                .collect();
            self.ask_some(op, fresh, now);
        }
    }
}
