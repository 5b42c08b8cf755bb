//! The node's one event loop: it owns the swarm, hands every incoming
//! `/halley/space/1` stream to a serving task, and obeys the handle's
//! commands. When it ends, the swarm (so every connection) and every serving
//! task go with it.

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
    loop {
        tokio::select! {
            event = swarm.select_next_some() => on_event(event),
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

fn on_event(event: SwarmEvent<BehaviourEvent>) {
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
        } => {
            tracing::warn!(from = %send_back_addr, error = %error, "refused an incoming connection");
        }
        SwarmEvent::ListenerError { error, .. } => {
            tracing::warn!(error = %error, "listener error");
        }
        _ => {}
    }
}
