//! What the driver believes of what members say about membership, after
//! SWIM's habits (as in foca): a member's word that a third peer is gone
//! only makes that peer a suspect, which this peer probes itself and
//! drops only if it stays silent ([`Suspects`]); a member's word that
//! this peer itself is gone is refuted by joining again through it, and
//! acted on (this peer evicts itself) only once most of the other members
//! have said so ([`Doubters`]). Pure state: the driver does the sending.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// How long a suspect has to answer a probe before it is dropped.
pub(super) const PROBE_WAIT: Duration = Duration::from_secs(3);
/// How long a member's word that this peer is gone counts.
pub(super) const DOUBT_WINDOW: Duration = Duration::from_secs(10);
/// Suspects held at once at most (one per member, and members are few).
const MAX_SUSPECTS: usize = 1_024;

/// Members said to be gone, probed: when each must have answered by, and
/// who said it.
#[derive(Debug, Default)]
pub(super) struct Suspects {
    due: BTreeMap<u64, (Instant, u64)>,
}

impl Suspects {
    /// Suspects `id`, on the word of `accuser` (at `now`); true if it was
    /// not already, so it is to be probed now.
    pub fn suspect(&mut self, id: u64, accuser: u64, now: Instant) -> bool {
        if self.due.contains_key(&id) || self.due.len() >= MAX_SUSPECTS {
            return false;
        }
        self.due.insert(id, (now + PROBE_WAIT, accuser));
        true
    }

    /// `id` said something: it is alive. Who had said otherwise, if
    /// anyone.
    pub fn heard(&mut self, id: u64) -> Option<u64> {
        self.due.remove(&id).map(|(_, accuser)| accuser)
    }

    /// The suspects that stayed silent past their wait, no longer held.
    pub fn silent(&mut self, now: Instant) -> Vec<u64> {
        let silent: Vec<u64> = self
            .due
            .iter()
            .filter(|&(_, &(due, _))| now >= due)
            .map(|(&id, _)| id)
            .collect();
        for id in &silent {
            self.due.remove(id);
        }
        silent
    }
}

/// What to do about a member saying this peer is gone.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Alive, whatever one says: join again through the sayer.
    Refute,
    /// Most members dropped this peer: they took over what it held, so it
    /// evicts itself and joins again.
    Evict,
}

/// The members that said, lately, that this peer is gone.
#[derive(Debug, Default)]
pub(super) struct Doubters {
    said: BTreeMap<u64, Instant>,
}

impl Doubters {
    /// Member `from` said this peer is gone, at `now`; `others` are the
    /// other members this peer knows.
    pub fn doubt(&mut self, from: u64, others: &[u64], now: Instant) -> Verdict {
        self.said
            .retain(|id, at| others.contains(id) && now.duration_since(*at) < DOUBT_WINDOW);
        if others.contains(&from) {
            self.said.insert(from, now);
        }
        if !self.said.is_empty() && self.said.len() * 2 > others.len() {
            self.said.clear();
            Verdict::Evict
        } else {
            Verdict::Refute
        }
    }

    pub fn clear(&mut self) {
        self.said.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspect_that_answers_stays_one_that_does_not_goes() {
        let start = Instant::now();
        let mut suspects = Suspects::default();
        assert!(suspects.suspect(1, 9, start));
        assert!(!suspects.suspect(1, 9, start), "probed once");
        assert!(suspects.suspect(2, 9, start));
        assert_eq!(suspects.heard(1), Some(9));
        assert_eq!(suspects.heard(1), None);
        assert!(suspects.silent(start + PROBE_WAIT / 2).is_empty());
        assert_eq!(suspects.silent(start + PROBE_WAIT), vec![2]);
        assert!(suspects.silent(start + PROBE_WAIT * 2).is_empty());
    }

    #[test]
    fn one_member_of_several_cannot_evict() {
        let now = Instant::now();
        let mut doubters = Doubters::default();
        let others = [1, 2, 3];
        assert_eq!(doubters.doubt(1, &others, now), Verdict::Refute);
        assert_eq!(
            doubters.doubt(1, &others, now),
            Verdict::Refute,
            "twice is one"
        );
        // A stranger's word does not count.
        assert_eq!(doubters.doubt(9, &others, now), Verdict::Refute);
        assert_eq!(doubters.doubt(2, &others, now), Verdict::Evict);
    }

    #[test]
    fn old_words_lapse_and_a_ring_of_two_trusts_the_other() {
        let now = Instant::now();
        let mut doubters = Doubters::default();
        let others = [1, 2, 3];
        doubters.doubt(1, &others, now);
        let later = now + DOUBT_WINDOW;
        assert_eq!(doubters.doubt(2, &others, later), Verdict::Refute);
        assert_eq!(doubters.doubt(1, &[1], later), Verdict::Evict);
        assert_eq!(doubters.doubt(5, &[], later), Verdict::Refute);
    }
}
