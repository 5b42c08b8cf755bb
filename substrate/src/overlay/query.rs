//! The asking side of `in`, `rd` and `scan`: ask every candidate peer;
//! a take with one candidate asks it to take at once ([`Ask::Direct`]:
//! `Ask`, `Taken`, no offer and accept while it holds a match; the query
//! does not end while such a take may be on its way);
//! a take accepts offers until it holds its `max` (declining the rest),
//! starts a new round when accepted reservations were gone and it holds
//! nothing, and re-asks when the view changes; every query gives up at its
//! deadline. A cancelled query stops its candidates' waiters at once and
//! ends when its accepts in flight have come back; what they took is put
//! back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::msg::{Ask, Wire};
use super::take_share::Shares;
use super::{Msg, OpId, Peer, Reply, Tagged, TupleId};
use crate::keyspace::Cover;
use crate::store::ReservationId;
use crate::template::Template;

/// One client operation waiting for candidates.
#[derive(Debug)]
pub(super) struct Query {
    pub(super) ask: Ask,
    pub(super) template: Template,
    /// The template's keyspace cover: its candidates are their owners.
    /// Not needed (not computed) while this peer is alone.
    ranges: Option<Cover>,
    /// Only what candidates hold now (`wait_ms == Some(0)`): no deadline,
    /// the query ends when every candidate has answered.
    probe: bool,
    deadline: Option<u64>,
    pub(super) round: u32,
    pub(super) asked: BTreeSet<u64>,
    /// Asked in this round and not answered.
    pub(super) waiting: BTreeSet<u64>,
    /// Answered that a waiter is parked for this take.
    parked: BTreeSet<u64>,
    /// Tuples accepted and not yet confirmed, by the peer they were
    /// accepted at.
    accepting: BTreeMap<u64, usize>,
    /// Asked directly ([`Ask::Direct`]) and not answered: a take may be on
    /// its way from there.
    pub(super) direct: BTreeSet<u64>,
    /// What a take of several asked each candidate for directly.
    pub(super) shares: Shares,
    /// The view changed while taken tuples were on their way: the new
    /// candidates are asked once they are not.
    stale: bool,
    /// Some accepted reservations were gone (lapsed, or their peer left).
    short: bool,
    /// What a take has taken so far, with the tuples' time left.
    pub(super) got: Vec<Wire>,
    /// The client went away: end as soon as no accept is in flight.
    pub(super) cancelled: bool,
    found: BTreeMap<TupleId, Tagged>,
}

impl Query {
    /// Whether taken tuples may be on their way to this query.
    pub(super) fn accepting(&self) -> bool {
        !self.accepting.is_empty() || !self.direct.is_empty()
    }

    /// When the timer must look at this query.
    pub(super) fn due(&self) -> Option<u64> {
        self.deadline.filter(|_| !self.accepting())
    }

    /// The peers that may have a waiter parked for this query.
    fn may_wait(&mut self) -> Vec<u64> {
        let peers = self.waiting.union(&self.parked).copied().collect();
        self.waiting.clear();
        self.parked.clear();
        peers
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
        let query = Query {
            ask,
            template,
            ranges: None,
            probe: wait_ms == Some(0),
            deadline: wait_ms.filter(|&w| w > 0).map(|w| now.saturating_add(w)),
            round: 0,
            asked: BTreeSet::new(),
            waiting: BTreeSet::new(),
            parked: BTreeSet::new(),
            accepting: BTreeMap::new(),
            direct: BTreeSet::new(),
            shares: Shares::default(),
            stale: false,
            short: false,
            got: Vec::new(),
            cancelled: false,
            found: BTreeMap::new(),
        };
        self.queries.insert(op, query);
        self.ask_all(op, now);
    }

    /// Asks every current candidate (again, in the query's current round);
    /// a take with one candidate asks it to take at once, a take of
    /// several asks each of several candidates for its share at once
    /// (`take_share`).
    fn ask_all(&mut self, op: OpId, now: u64) {
        let Some(candidates) = self.candidates_of(op) else {
            return;
        };
        let q = self.queries.get(&op).expect("candidates of a query");
        if let Ask::Take(max) = q.ask
            && let Some(shares) = Shares::split(max, &candidates)
        {
            let wait_ms = self.wait_left(op, now);
            self.ask_shares(op, shares, wait_ms);
            self.maybe_finish(op, now);
            return;
        }
        let direct = candidates.len() == 1;
        self.ask_some(op, candidates, direct, now);
    }

    /// The `wait_ms` a query's asks carry now.
    fn wait_left(&self, op: OpId, now: u64) -> Option<u64> {
        let q = self.queries.get(&op)?;
        match q.probe {
            true => Some(0),
            false => q.deadline.map(|d| d.saturating_sub(now)),
        }
    }

    /// The current candidates of query `op`: this peer alone, or the
    /// owners of the template's cover.
    fn candidates_of(&mut self, op: OpId) -> Option<Vec<u64>> {
        let q = self.queries.get(&op)?;
        if self.view.len() == 1 && self.view.contains(self.id) {
            return Some(vec![self.id]);
        }
        let cover = match &q.ranges {
            Some(cover) => Arc::clone(cover),
            None => {
                let template = q.template.clone();
                let cover = self.cover(&template);
                self.queries.get_mut(&op)?.ranges = Some(Arc::clone(&cover));
                cover
            }
        };
        Some(self.view.owners_of(&cover))
    }

    /// Asks `peers`; `direct`: they are the take's only candidates.
    fn ask_some(&mut self, op: OpId, peers: Vec<u64>, direct: bool, now: u64) {
        let wait_ms = self.wait_left(op, now);
        let Some(q) = self.queries.get_mut(&op) else {
            return;
        };
        let (round, template) = (q.round, q.template.clone());
        let ask = match q.ask {
            Ask::Take(max) if direct => {
                q.direct.extend(&peers);
                Ask::Direct(max)
            }
            ask => ask,
        };
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
        self.maybe_finish(op, now);
    }

    /// Accepts as many offered tuples as the take still wants and declines
    /// the rest; once it has accepted its `max`, the other candidates stop
    /// waiting for it.
    pub(super) fn on_offer(
        &mut self,
        from: u64,
        op: OpId,
        round: u32,
        mut reservations: Vec<ReservationId>,
        now: u64,
    ) {
        let wanted = self
            .queries
            .get_mut(&op)
            .filter(|q| q.round == round && !q.cancelled);
        let Some((q, max)) = wanted.and_then(|q| match q.ask {
            Ask::Take(max) => Some((q, max)),
            _ => None,
        }) else {
            self.send(from, Msg::Decline { reservations });
            return;
        };
        q.waiting.remove(&from);
        q.parked.remove(&from);
        q.direct.remove(&from);
        q.shares.answered(from, 0);
        let held = q.got.len() + q.accepting.values().sum::<usize>();
        let room = max.saturating_sub(held);
        let declined = reservations.split_off(room.min(reservations.len()));
        let full = held + reservations.len() >= max;
        let others = if full { q.may_wait() } else { Vec::new() };
        if !reservations.is_empty() {
            *q.accepting.entry(from).or_default() += reservations.len();
            self.send(from, Msg::Accept { op, reservations });
        }
        if !declined.is_empty() {
            let reservations = declined;
            self.send(from, Msg::Decline { reservations });
        }
        for to in others {
            self.send(to, Msg::Cancel { op });
        }
        self.maybe_finish(op, now);
    }

    /// A candidate has nothing for a take of several now, and parked it.
    pub(super) fn on_waiting(&mut self, from: u64, op: OpId, round: u32, now: u64) {
        if let Some(q) = self.queries.get_mut(&op).filter(|q| q.round == round) {
            // Cancelled meanwhile, it no longer waits, but must hear that
            // no direct take is on its way.
            let direct = q.direct.remove(&from);
            q.shares.answered(from, 0);
            let waited = q.waiting.remove(&from);
            if waited {
                q.parked.insert(from);
            }
            if q.stale && !q.accepting() {
                self.ask_new_candidates(op, now);
            } else if waited || direct {
                self.maybe_finish(op, now);
            }
        }
    }

    /// Tuples accepted at (or directly taken by) candidate `from` arrived;
    /// if their query is gone they go back, and so do any past the take's
    /// `max`. A take's second answer (its chain sent again) is dropped.
    pub(super) fn on_taken(
        &mut self,
        from: u64,
        op: OpId,
        mut tuples: Vec<Wire>,
        links: Vec<u64>,
        now: u64,
    ) {
        if !self.first_answer(&tuples, links, now) {
            return;
        }
        let Some(q) = self.queries.get_mut(&op) else {
            self.put_back(tuples, now);
            return;
        };
        if q.direct.remove(&from) {
            q.waiting.remove(&from);
            q.shares.answered(from, tuples.len());
        }
        let accepted = q.accepting.remove(&from).unwrap_or(0);
        q.short |= tuples.len() < accepted;
        let max = match q.ask {
            Ask::Take(max) => max,
            _ => 0,
        };
        let extra = tuples.split_off(max.saturating_sub(q.got.len()).min(tuples.len()));
        q.got.extend(tuples);
        if !extra.is_empty() {
            self.put_back(extra, now);
        }
        self.maybe_finish(op, now);
    }

    /// Writes taken tuples back under new ids; the (old, new) id pairs.
    fn put_back(&mut self, tuples: Vec<Wire>, now: u64) -> Vec<(TupleId, TupleId)> {
        tuples
            .into_iter()
            .map(|(tagged, ttl)| (tagged.id, self.start_return(tagged.tuple, ttl, now)))
            .collect()
    }

    /// Starts a new round: every candidate is asked again.
    fn new_round(&mut self, op: OpId, now: u64) {
        if let Some(q) = self.queries.get_mut(&op) {
            q.round += 1;
            q.short = false;
            q.accepting.clear();
            q.direct.clear();
            q.shares.clear();
            q.asked.clear();
            q.waiting.clear();
            q.parked.clear();
            self.ask_all(op, now);
        }
    }

    pub(super) fn on_copies(
        &mut self,
        from: u64,
        op: OpId,
        round: u32,
        tuples: Vec<Tagged>,
        more: bool,
        now: u64,
    ) {
        let Some(q) = self.queries.get_mut(&op).filter(|q| q.round == round) else {
            return;
        };
        // A candidate has answered with its last part.
        if !more {
            q.waiting.remove(&from);
        }
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
            Ask::Take(_) | Ask::Direct(_) | Ask::Subscribe => {}
        }
        self.maybe_finish(op, now);
    }

    pub(super) fn on_no_match(&mut self, from: u64, op: OpId, round: u32, now: u64) {
        if let Some(q) = self.queries.get_mut(&op).filter(|q| q.round == round) {
            q.waiting.remove(&from);
            q.parked.remove(&from);
            q.direct.remove(&from);
            q.shares.answered(from, 0);
            self.maybe_finish(op, now);
        }
    }

    /// Ends a query that has its answer: a take once it holds its `max`,
    /// or holds some and every candidate has answered; any query whose
    /// candidates have all answered without a match (a subscription lasts
    /// until unsubscribed). Nothing ends while an accept is in flight.
    fn maybe_finish(&mut self, op: OpId, now: u64) {
        let Some(q) = self.queries.get(&op) else {
            return;
        };
        if q.accepting() {
            return;
        }
        if q.cancelled {
            self.end_cancelled(op, now);
            return;
        }
        let answered = q.waiting.is_empty();
        let done = match q.ask {
            Ask::Subscribe => false,
            Ask::Take(_) | Ask::Direct(_) if q.got.is_empty() && q.short => {
                self.new_round(op, now);
                return;
            }
            Ask::Take(max) | Ask::Direct(max) => {
                let enough = q.got.len() >= max;
                let settled = answered && (!q.got.is_empty() || q.parked.is_empty());
                if !enough && settled && self.top_up(op) {
                    return;
                }
                enough || settled
            }
            Ask::Read | Ask::Scan(_) => answered,
        };
        if done {
            self.finish(op);
        }
    }

    fn finish(&mut self, op: OpId) {
        let Some(mut q) = self.queries.remove(&op) else {
            return;
        };
        for to in q.may_wait() {
            self.send(to, Msg::Cancel { op });
        }
        let reply = match q.ask {
            Ask::Scan(limit) => Reply::Listed(q.found.into_values().take(limit).collect()),
            Ask::Take(_) | Ask::Direct(_) => {
                Reply::Taken(q.got.into_iter().map(|(t, _)| t).collect())
            }
            Ask::Read => Reply::Found(None),
            Ask::Subscribe => Reply::Ended,
        };
        self.reply(op, reply);
    }

    /// The client of `op` went away (see [`super::Event::Cancel`]).
    pub(super) fn cancel(&mut self, op: OpId, now: u64) {
        let Some(q) = self.queries.get_mut(&op).filter(|q| !q.cancelled) else {
            return;
        };
        q.cancelled = true;
        let mut stop = q.may_wait();
        if q.ask == Ask::Subscribe {
            stop = q.asked.iter().copied().collect();
        }
        for to in stop {
            self.send(to, Msg::Cancel { op });
        }
        self.maybe_finish(op, now);
    }

    /// Ends a cancelled query with no accept in flight, putting back what
    /// it took.
    fn end_cancelled(&mut self, op: OpId, now: u64) {
        let Some(q) = self.queries.remove(&op) else {
            return;
        };
        let reply = match q.ask {
            Ask::Subscribe => Reply::Ended,
            _ => Reply::Cancelled {
                returned: self.put_back(q.got, now),
            },
        };
        self.reply(op, reply);
    }

    pub(super) fn on_notified(&mut self, op: OpId, tuple: Tagged) {
        if self
            .queries
            .get(&op)
            .is_some_and(|q| q.ask == Ask::Subscribe && !q.cancelled)
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

    /// After a view change: forgets candidates that are gone (an accept
    /// at a peer that is gone comes back with nothing), asks new
    /// candidates; `all`: asks every candidate again (this peer is back
    /// in the ring after the others dropped it, and they forgot its
    /// waiters and subscriptions).
    pub(super) fn reask(&mut self, all: bool, now: u64) {
        let ops: Vec<OpId> = self.queries.keys().copied().collect();
        for op in ops {
            let q = self.queries.get_mut(&op).expect("listed");
            if all {
                q.asked.clear();
                q.waiting.clear();
                q.parked.clear();
            }
            let view = &self.view;
            q.waiting.retain(|&p| view.contains(p));
            q.parked.retain(|&p| view.contains(p));
            q.asked.retain(|&p| view.contains(p));
            let before = q.accepting.len() + q.direct.len();
            q.accepting.retain(|&p, _| view.contains(p));
            // A direct take unanswered by a peer gone is asked again; if
            // it had taken something, its replicas still answer (tuples
            // that come after the query ends go back under new ids).
            q.direct.retain(|&p| view.contains(p));
            q.shares.retain(|p| view.contains(p));
            q.short |= q.accepting.len() + q.direct.len() < before;
            if q.accepting() {
                // Asked once nothing is on its way any more.
                q.stale = true;
                continue;
            }
            self.ask_new_candidates(op, now);
        }
    }

    /// Asks the candidates of `op` not asked yet, after a view change.
    fn ask_new_candidates(&mut self, op: OpId, now: u64) {
        let Some(q) = self.queries.get_mut(&op) else {
            return;
        };
        q.stale = false;
        if q.short || q.cancelled {
            self.maybe_finish(op, now);
            return;
        }
        let candidates = self.candidates_of(op).unwrap_or_default();
        let q = self.queries.get(&op).expect("listed");
        let fresh: Vec<u64> = candidates
            .into_iter()
            .filter(|p| !q.asked.contains(p))
            .collect();
        self.ask_some(op, fresh, false, now);
    }
}
