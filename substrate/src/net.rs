//! The libp2p stack nodes and clients share: TCP without Nagle's delay,
//! noise, yamux; identify and ping; and generic streams
//! ([`libp2p_stream`]) for the long-lived `/halley/space/1` streams.

use std::time::Duration;

pub use libp2p::multiaddr::Protocol;
pub use libp2p::pnet::PreSharedKey;

use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Swarm, SwarmBuilder, identify, noise, ping, tcp, yamux};

/// What identify announces as the protocol family.
const IDENTIFY_PROTOCOL: &str = "/halley/1.0.0";

/// A connection without streams closes after this long. Clients keep their
/// one stream open, so this only reaps connections nobody uses.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why the libp2p stack could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the libp2p stack: {0}")]
pub struct NetError(String);

/// The behaviours every Halley swarm runs.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// Opens and accepts `/halley/space/1` streams through its `Control`.
    pub stream: libp2p_stream::Behaviour,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour").finish_non_exhaustive()
    }
}

/// A swarm on the tokio runtime with `keypair` as its identity.
pub fn swarm(keypair: Keypair) -> Result<Swarm<Behaviour>, NetError> {
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError(e.to_string()))?
        .with_behaviour(|key| Behaviour {
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.to_owned(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
        })
        .map_err(|e| NetError(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    Ok(swarm)
}
