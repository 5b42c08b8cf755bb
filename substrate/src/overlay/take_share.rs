//! A take of several from several candidates, by shares: instead of every
//! candidate reserving and offering up to the take's whole `max` (the
//! asker accepting `max` and declining the rest, so that three stocked
//! candidates move twice what is taken), each candidate is asked directly
//! ([`Ask::Direct`]) for its share of `max` (`max / k`, the remainder to
//! the first ones): it removes up to that many now and sends them
//! (`Taken`), or, holding none, parks the take and says `Waiting` (a later
//! match is offered under a lease, as for any parked take). Once every
//! candidate has answered, a take still short of its `max` asks the
//! candidates that sent their whole share (they may hold more) for the
//! rest, split the same way, with `wait_ms = 0` (only what is there now);
//! a candidate that sent less than its share is not asked again. So the
//! take still gathers what its candidates hold, up to `max`.
//!
//! Exactly-once: a candidate removes tuples only for a query that asked it
//! directly, and the query counts that answer as a take on its way (it
//! neither ends, times out nor re-asks under it), exactly as for a take's
//! only candidate; tuples arriving after the query ended, or past its
//! `max`, are written back. A crash of the asker while taken tuples are on
//! their way loses them, as it does on the single-candidate direct path
//! (the bar this path keeps). A take whose `max` is below its number of
//! candidates keeps offer and accept: a share of zero would skip a
//! candidate that may hold the only match.

use std::collections::{BTreeMap, BTreeSet};

use super::msg::Ask;
use super::{Msg, OpId, Peer};

/// What a take asked each candidate for directly, in the current round.
#[derive(Debug, Default)]
pub(super) struct Shares {
    /// The share asked of each peer, until it answers with tuples.
    asked: BTreeMap<u64, usize>,
    /// Peers that sent their whole share: they may hold more.
    more: BTreeSet<u64>,
}

impl Shares {
    /// `max` split over `peers`, in their order (`max / k` each, one more
    /// for the first `max % k`); `None` when some share would be zero or
    /// there is a single peer (its direct take asks for all of `max`).
    pub(super) fn split(max: usize, peers: &[u64]) -> Option<Vec<(u64, usize)>> {
        let k = peers.len();
        if k < 2 || max < k {
            return None;
        }
        let (each, rest) = (max / k, max % k);
        let shares = peers
            .iter()
            .enumerate()
            .map(|(i, &p)| (p, each + usize::from(i < rest)))
            .collect();
        Some(shares)
    }

    fn record(&mut self, shares: &[(u64, usize)]) {
        self.asked.extend(shares.iter().copied());
    }

    /// Peer `from` answered its direct ask with `sent` tuples.
    pub(super) fn answered(&mut self, from: u64, sent: usize) {
        if let Some(share) = self.asked.remove(&from)
            && sent >= share
        {
            self.more.insert(from);
        }
    }

    /// Forgets peers that left the view: a top-up is never sent to them.
    pub(super) fn retain(&mut self, alive: impl Fn(u64) -> bool) {
        self.asked.retain(|&p, _| alive(p));
        self.more.retain(|&p| alive(p));
    }

    pub(super) fn clear(&mut self) {
        self.asked.clear();
        self.more.clear();
    }

    /// The top-up of a take that still has `room`: split over the peers
    /// that sent their whole share (the first `room` of them if there are
    /// more peers than room), which then count as holding more only once
    /// they send their whole new share.
    fn top_up(&mut self, room: usize) -> Vec<(u64, usize)> {
        if room == 0 {
            return Vec::new();
        }
        let peers: Vec<u64> = self.more.iter().copied().take(room).collect();
        for p in &peers {
            self.more.remove(p);
        }
        match Shares::split(room, &peers) {
            Some(shares) => shares,
            None => peers.into_iter().map(|p| (p, room)).collect(),
        }
    }
}

impl Peer {
    /// Asks each of `shares`' peers directly for its share of take `op`;
    /// `wait_ms` as the query's asks carry it.
    pub(super) fn ask_shares(&mut self, op: OpId, shares: Vec<(u64, usize)>, wait_ms: Option<u64>) {
        let Some(q) = self.queries.get_mut(&op) else {
            return;
        };
        q.shares.record(&shares);
        let (round, template) = (q.round, q.template.clone());
        for &(to, _) in &shares {
            q.direct.insert(to);
            q.asked.insert(to);
            q.waiting.insert(to);
        }
        for (to, share) in shares {
            let msg = Msg::Ask {
                op,
                round,
                ask: Ask::Direct(share),
                template: template.clone(),
                wait_ms,
            };
            self.send(to, msg);
        }
    }

    /// A take whose candidates have all answered, nothing on its way,
    /// still short of its `max`: asks the candidates that sent their
    /// whole share for the rest (only what they hold now). Whether it
    /// asked.
    pub(super) fn top_up(&mut self, op: OpId) -> bool {
        let Some(q) = self.queries.get_mut(&op) else {
            return false;
        };
        let Ask::Take(max) = q.ask else {
            return false;
        };
        if q.cancelled || q.accepting() || !q.waiting.is_empty() {
            return false;
        }
        let shares = q.shares.top_up(max.saturating_sub(q.got.len()));
        if shares.is_empty() {
            return false;
        }
        self.ask_shares(op, shares, Some(0));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Shares;

    #[test]
    fn a_max_splits_evenly_with_the_remainder_first() {
        let split = Shares::split(1_024, &[7, 8, 9]).unwrap();
        assert_eq!(split, [(7, 342), (8, 341), (9, 341)]);
        assert_eq!(
            Shares::split(3, &[7, 8, 9]).unwrap(),
            [(7, 1), (8, 1), (9, 1)]
        );
        // Below one each, or a single peer: no split.
        assert_eq!(Shares::split(2, &[7, 8, 9]), None);
        assert_eq!(Shares::split(100, &[7]), None);
    }

    #[test]
    fn only_peers_that_sent_their_whole_share_are_topped_up() {
        let mut shares = Shares::default();
        shares.record(&[(7, 342), (8, 341), (9, 341)]);
        shares.answered(7, 342);
        shares.answered(8, 10);
        shares.answered(9, 341);
        // 1,024 − 693 = 331 left, split over 7 and 9.
        assert_eq!(shares.top_up(331), [(7, 166), (9, 165)]);
        // Asked once: not again until they answer.
        assert!(shares.top_up(331).is_empty());
        shares.record(&[(7, 166), (9, 165)]);
        shares.answered(9, 165);
        // One unit of room for one peer: all of it to that peer.
        assert_eq!(shares.top_up(1), [(9, 1)]);
        // A peer gone is never asked.
        shares.record(&[(9, 1)]);
        shares.answered(9, 1);
        shares.retain(|p| p != 9);
        assert!(shares.top_up(5).is_empty());
    }
}
