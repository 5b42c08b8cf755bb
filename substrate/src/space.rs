//! The `Space` API: the one door the paradigms and the CLI use to reach a
//! tuple space, whether it is embedded in this process or a remote peer.
//!
//! Timeouts: `None` waits forever, `Some(Duration::ZERO)` does not block
//! (Linda's `inp`/`rdp`), anything else waits at most that long. An operation
//! that times out returns `Ok(None)` / an empty vector; errors are reserved for
//! a space that cannot be reached or refuses the request.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// One step of [`Space::steps`] (and of a `Steps` request on the wire).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// [`Space::out_all`].
    Out {
        tuples: Vec<Tuple>,
        ttl: Option<Duration>,
    },
    /// [`Space::take_up_to`].
    Take {
        template: Template,
        max: u32,
        timeout: Option<Duration>,
    },
}

/// The most steps one [`Space::steps`] may hold.
pub const MAX_STEPS: usize = 16;

/// Why `steps` cannot run as they are: between 1 and [`MAX_STEPS`] of
/// them, and only the last may wait.
pub fn check_steps(steps: &[Step]) -> Result<(), SpaceError> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(SpaceError::Refused(format!(
            "steps: between 1 and {MAX_STEPS}, not {}",
            steps.len()
        )));
    }
    let last = steps.len() - 1;
    match steps[..last].iter().position(
        |step| matches!(step, Step::Take { timeout, .. } if *timeout != Some(Duration::ZERO)),
    ) {
        Some(i) => Err(SpaceError::Refused(format!(
            "step {i}: only the last step may wait (a take before it has timeout 0)"
        ))),
        None => Ok(()),
    }
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

    /// Runs `steps` one after the other, each once the one before has
    /// finished (their effects happen in this order), and returns what each
    /// took (empty for an `Out`). Only the last step may wait: an earlier
    /// take must have a zero timeout, or nothing runs ([`check_steps`]). A
    /// remote space sends them in one round trip. On an error the steps
    /// before it stand, but what their takes took goes back to the space.
    fn steps(
        &self,
        steps: Vec<Step>,
    ) -> impl Future<Output = Result<Vec<Vec<Tuple>>, SpaceError>> + Send {
        one_by_one(self, steps)
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

/// [`Space::steps`] done with one call of `space` a step.
pub async fn one_by_one<S: Space>(
    space: &S,
    steps: Vec<Step>,
) -> Result<Vec<Vec<Tuple>>, SpaceError> {
    check_steps(&steps)?;
    let mut taken: Vec<Vec<Tuple>> = Vec::with_capacity(steps.len());
    for step in steps {
        let done = match step {
            Step::Out { tuples, ttl } => space.out_all(tuples, ttl).await.map(|()| Vec::new()),
            Step::Take {
                template,
                max,
                timeout,
            } => {
                let max = usize::try_from(max).unwrap_or(usize::MAX);
                space.take_up_to(template, max, timeout).await
            }
        };
        match done {
            Ok(tuples) => taken.push(tuples),
            Err(e) => {
                let back: Vec<Tuple> = taken.into_iter().flatten().collect();
                if !back.is_empty() {
                    space.out_all(back, None).await?;
                }
                return Err(e);
            }
        }
    }
    Ok(taken)
}
