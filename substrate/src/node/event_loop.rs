//! The node's one event loop: it owns the swarm, hands every incoming
//! `/halley/space/1` stream to a serving task, and obeys the handle's
//! commands. When it ends, the swarm (so every connection) and every serving
//! task go with it.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::Swarm;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p_stream::IncomingStreams;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::caller::Caller;
use super::serve::{self, Serving};
use super::{Command, Served};
use crate::net::{Behaviour, BehaviourEvent};

pub(super) async fn run<S: Served>(
    mut swarm: Swarm<Behaviour>,
    mut incoming: IncomingStreams,
    mut commands: mpsc::Receiver<Command>,
    serving: Serving<S>,
) {
    let mut streams = JoinSet::new();
    let mut refusals = Refusals::default();
    let mut flush = tokio::time::interval(REFUSALS_WINDOW);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = swarm.select_next_some() => on_event(event, &mut refusals),
            _ = flush.tick() => {
                if let Some(more) = refusals.flush(Instant::now()) {
                    tracing::warn!(
                        "refused {more} more incoming connections in the last {}s, not logged one by one",
                        REFUSALS_WINDOW.as_secs()
                    );
                }
            }
            Some((peer, stream)) = incoming.next() => {
                tracing::debug!(%peer, "stream opened");
                let (reader, writer) = futures::AsyncReadExt::split(stream);
                let task = serve::serve(Caller::Remote(peer), reader, writer, serving.clone());
                streams.spawn(task.in_current_span());
            }
            Some(done) = streams.join_next(), if !streams.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a stream's serving task failed");
                }
            }
            command = commands.recv() => match command {
                Some(Command::Stop) | None => break,
                Some(Command::Dial(peer, addr)) => {
                    if !swarm.is_connected(&peer) {
                        let opts = DialOpts::peer_id(peer)
                            .addresses(vec![addr])
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        if let Err(e) = swarm.dial(opts) {
                            tracing::debug!(%peer, error = %e, "dial");
                        }
                    }
                }
            },
        }
    }
    tracing::info!("stopped");
}

fn on_event(event: SwarmEvent<BehaviourEvent>, refusals: &mut Refusals) {
    match event {
        SwarmEvent::ConnectionEstablished {
            peer_id, endpoint, ..
        } => {
            tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
        }
        SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
            tracing::debug!(peer = %peer_id, cause = ?cause, "disconnected");
        }
        SwarmEvent::IncomingConnectionError {
            send_back_addr,
            error,
            ..
        } => match refusals.note(Instant::now()) {
            Say::Each => {
                tracing::warn!(from = %send_back_addr, error = %error, "refused an incoming connection");
            }
            Say::Summary(more) => {
                tracing::warn!(
                    from = %send_back_addr, error = %error,
                    "refused an incoming connection, and {more} more in the last {}s not logged one by one",
                    REFUSALS_WINDOW.as_secs()
                );
            }
            Say::Nothing => {}
        },
        SwarmEvent::ListenerError { error, .. } => {
            tracing::warn!(error = %error, "listener error");
        }
        _ => {}
    }
}

/// Refused incoming connections logged one by one in each window; past
/// that they are counted and summed up by the first refusal of a later
/// window: a flood of bad handshakes cannot flood the log.
const REFUSALS_LOGGED: u32 = 5;
/// The window of [`REFUSALS_LOGGED`].
const REFUSALS_WINDOW: Duration = Duration::from_secs(10);

/// What to log of one refused connection.
#[derive(Debug, PartialEq, Eq)]
enum Say {
    Each,
    /// This one, and how many went unlogged before it.
    Summary(u64),
    Nothing,
}

/// Refused connections in the current window.
#[derive(Debug, Default)]
struct Refusals {
    since: Option<Instant>,
    logged: u32,
    unlogged: u64,
}

impl Refusals {
    /// The refusals not logged one by one, once their window is over (the
    /// window starts again).
    fn flush(&mut self, now: Instant) -> Option<u64> {
        let since = self.since?;
        if now.duration_since(since) < REFUSALS_WINDOW || self.unlogged == 0 {
            return None;
        }
        let unlogged = self.unlogged;
        *self = Refusals::default();
        Some(unlogged)
    }

    fn note(&mut self, now: Instant) -> Say {
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= REFUSALS_WINDOW {
            let unlogged = std::mem::take(&mut self.unlogged);
            *self = Refusals {
                since: Some(now),
                logged: 1,
                unlogged: 0,
            };
            return if unlogged > 0 {
                Say::Summary(unlogged)
            } else {
                Say::Each
            };
        }
        if self.logged < REFUSALS_LOGGED {
            self.logged += 1;
            Say::Each
        } else {
            self.unlogged += 1;
            Say::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_logs_five_a_window_then_one_sum() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        let said: Vec<Say> = (0..1000)
            .map(|i| r.note(t0 + Duration::from_millis(i)))
            .collect();
        assert_eq!(said.iter().filter(|s| **s == Say::Each).count(), 5);
        assert_eq!(said[5..], [(); 995].map(|()| Say::Nothing));
        assert_eq!(r.note(t0 + REFUSALS_WINDOW), Say::Summary(995));
        assert_eq!(r.note(t0 + REFUSALS_WINDOW), Say::Each);
        // A quiet window logs its refusals one by one again.
        let later = t0 + 3 * REFUSALS_WINDOW;
        assert_eq!(r.note(later), Say::Each);
        // A flood that stops is summed up by the timer once its window ends.
        for i in 0..20 {
            r.note(later + Duration::from_millis(i));
        }
        assert_eq!(r.flush(later + Duration::from_secs(1)), None);
        assert_eq!(r.flush(later + REFUSALS_WINDOW), Some(16));
        assert_eq!(r.flush(later + 2 * REFUSALS_WINDOW), None);
        assert_eq!(r.note(later + 2 * REFUSALS_WINDOW), Say::Each);
    }
}
