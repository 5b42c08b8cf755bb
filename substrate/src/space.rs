//! The `Space` API: the one door the paradigms and the CLI use to reach a
//! tuple space, whether it is embedded in this process or a remote peer.
//!
//! Timeouts: `None` waits forever, `Some(Duration::ZERO)` does not block
//! (Linda's `inp`/`rdp`), anything else waits at most that long. An operation
//! that times out returns `Ok(None)` / an empty vector; errors are reserved for
//! a space that cannot be reached or refuses the request.

use std::future::Future;
use std::time::Duration;

use crate::template::Template;
use crate::tuple::Tuple;

/// Why a space operation failed (a timeout is not a failure).
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// The space (the embedded store's driver, or the connection to the peer)
    /// is gone; retrying on this handle will not help.
    #[error("the space is unreachable: {0}")]
    Unreachable(String),
    /// The space refused the request (too large, malformed, ...).
    #[error("the space refused the request: {0}")]
    Refused(String),
}

/// A stream of the tuples written after `subscribe` that match its template.
/// Dropping it ends the subscription.
pub trait Subscription: Send + 'static {
    /// The next matching tuple, or `None` once the space is gone.
    fn next(&mut self) -> impl Future<Output = Option<Tuple>> + Send;
}

/// A tuple space handle. Cheap to clone; usable from many tasks at once.
pub trait Space: Clone + Send + Sync + 'static {
    type Subscription: Subscription;

    /// Stores every tuple; returns once all are held (by their primary and live
    /// replicas, in a replicated space). `ttl`: each expires after this long.
    fn out_all(
        &self,
        tuples: Vec<Tuple>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), SpaceError>> + Send;

    /// Removes and returns between 1 and `max` tuples matching `template`,
    /// oldest first, waiting up to `timeout` for the first; empty on timeout.
    fn take_up_to(
        &self,
        template: Template,
        max: usize,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Vec<Tuple>, SpaceError>> + Send;

    /// Returns a copy of the oldest tuple matching `template`, waiting up to
    /// `timeout`; `None` on timeout.
    fn read(
        &self,
        template: Template,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Option<Tuple>, SpaceError>> + Send;

    /// Copies of the matching tuples (at most `limit`), without removing them.
    fn scan(
        &self,
        template: Template,
        limit: Option<usize>,
    ) -> impl Future<Output = Result<Vec<Tuple>, SpaceError>> + Send;

    /// Every tuple written from now on that matches `template`.
    fn subscribe(
        &self,
        template: Template,
    ) -> impl Future<Output = Result<Self::Subscription, SpaceError>> + Send;

    /// Linda `out`: stores one tuple.
    fn out(&self, tuple: Tuple) -> impl Future<Output = Result<(), SpaceError>> + Send {
        self.out_all(vec![tuple], None)
    }

    /// Linda `in`: removes and returns one matching tuple; `None` on timeout.
    fn take(
        &self,
        template: Template,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Option<Tuple>, SpaceError>> + Send {
        async move {
            Ok(self
                .take_up_to(template, 1, timeout)
                .await?
                .into_iter()
                .next())
        }
    }
}
