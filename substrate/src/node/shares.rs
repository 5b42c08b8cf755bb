//! Fair shares of a node's waiting requests: each client, known by the
//! peer id its connection authenticated (or, through the local door, by
//! its connection: [`Caller`]), may hold at most [`SHARE`]
//! requests that wait (takes and reads with a wait, subscriptions) across
//! all its streams, so one client parking its whole share cannot leave
//! another without room (the ring's pool of queries is four shares deep,
//! and writes have a pool of their own). A client that makes up fresh
//! identities gets a share for each: the `--secret-file` is what keeps
//! strangers out (see SECURITY.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::caller::Caller;
use crate::space::Step;
use crate::wire::Request;

/// Waiting requests one client may hold at once.
pub(super) const SHARE: usize = 1_024;
/// The refusal of a request past its client's share.
pub(super) const FULL: &str = "this client holds its share of 1024 waiting requests at this node (takes, reads, subscriptions)";

/// Each client's waiting requests.
#[derive(Debug, Default)]
pub(super) struct Shares {
    held: Mutex<HashMap<Caller, usize>>,
}

/// One waiting request's place in its client's share, given back on drop.
#[derive(Debug)]
pub(super) struct Place {
    shares: Arc<Shares>,
    peer: Caller,
}

/// Whether `request` may wait (and so counts against a share).
pub(super) fn waits(request: &Request) -> bool {
    match request {
        Request::Take { timeout, .. } | Request::Read { timeout, .. } => {
            timeout.is_none_or(|t| !t.is_zero())
        }
        Request::Subscribe { .. } => true,
        Request::Steps(steps) => steps.last().is_some_and(
            |step| matches!(step, Step::Take { timeout, .. } if timeout.is_none_or(|t| !t.is_zero())),
        ),
        Request::Out { .. }
        | Request::Scan { .. }
        | Request::Cancel
        | Request::Status
        | Request::Members
        | Request::Present { .. } => false,
    }
}

impl Shares {
    /// A place in `peer`'s share, if it has one left.
    pub fn take(self: &Arc<Self>, peer: Caller) -> Option<Place> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(peer).or_insert(0);
        if *count >= SHARE {
            return None;
        }
        *count += 1;
        Some(Place {
            shares: self.clone(),
            peer,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Template;
    use std::time::Duration;

    fn fresh() -> Caller {
        Caller::Remote(
            libp2p::identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id(),
        )
    }

    #[test]
    fn a_client_gets_its_share_and_no_more_others_get_theirs() {
        let shares = Arc::new(Shares::default());
        let greedy = fresh();
        let places: Vec<Place> = (0..SHARE).map(|_| shares.take(greedy).unwrap()).collect();
        assert!(shares.take(greedy).is_none());
        let other = shares.take(fresh());
        assert!(other.is_some());
        drop(places);
        assert!(shares.take(greedy).is_some());
        drop(other);
        assert!(shares.held.lock().unwrap().len() <= 1);
    }

    #[test]
    fn only_requests_that_wait_count() {
        let template = Template::new(Vec::new());
        let take = |timeout| Request::Take {
            template: template.clone(),
            max: 1,
            timeout,
        };
        assert!(waits(&take(None)));
        assert!(waits(&take(Some(Duration::from_secs(1)))));
        assert!(!waits(&take(Some(Duration::ZERO))));
        assert!(waits(&Request::Subscribe {
            template: template.clone()
        }));
        assert!(!waits(&Request::Status));
    }
}
