//! The libp2p node: one peer of the space, serving a local space to remote
//! clients over `/halley/space/1`.
//!
//! Who talks to whom: [`Node::start`] builds the swarm ([`crate::net`],
//! with the private overlay's key if given: [`Node::start_with`]),
//! listens, connects to one of the peers to join (a ring node given some),
//! and spawns one event-loop task ([`event_loop`]) that owns the
//! swarm and `select!`s over its events, the incoming streams and a bounded
//! command channel fed by the [`Node`] handle. Each incoming stream gets its
//! own task ([`serve`]) that reads request frames, runs every request
//! against the local [`Served`] space in a task of its own (so blocked takes
//! wait side by side) and writes the answers through one bounded writer.
//! Everything runs under the tracing span `node{id=<peer id>}`.
//!
//! The local door ([`Node::serve_unix`], [`local`]) serves the same space
//! over a Unix-domain socket to processes of this machine run by the same
//! user, without noise and yamux.
//!
//! What is served: [`Node::start_ring`] makes the node a ring peer
//! ([`RingSpace`], what `halley node` always runs: alone it is a ring of
//! one that others can join); [`Node::start`] serves any [`Served`] space,
//! such as the embedded space `halley run` shares with its workers.

mod caller;
mod event_loop;
pub mod gate;
pub mod identity;
pub mod local;
pub mod metrics;
mod ring;
mod serve;
mod shares;

pub use local::{LocalDoorError, MAX_LOCAL};
pub use ring::{BadOverlay, RingSpace, check_overlay, epoch_plausible};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tracing::Instrument;

use crate::net::{self, DialFailure, NetError, PreSharedKey};
use crate::space::Space;
use crate::spin::Spin;
use crate::wire::PROTOCOL;
pub use identity::Identity;
use metrics::Metrics;
use metrics::http::Probe;
use serve::Serving;
use shares::Shares;

/// How long `start` waits for the listener to report its address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a joining node tries each peer it was given.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Commands the handle sends to the event loop.
const COMMANDS: usize = 16;

/// A space a node can serve: the [`Space`] operations, plus what `status`
/// reports.
pub trait Served: Space {
    /// How many tuples the space holds now.
    fn tuple_count(&self) -> u64;

    /// The whole space's status, when it spans more than this node; `None`:
    /// this node alone, holding [`Served::tuple_count`] tuples.
    fn status(&self) -> impl std::future::Future<Output = Option<crate::wire::Status>> + Send {
        async { None }
    }

    /// The ring's members as this node sees them, counting nothing: none
    /// when it serves alone.
    fn members(&self) -> impl std::future::Future<Output = Vec<crate::wire::RingMember>> + Send {
        async { Vec::new() }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    /// None of the peers to join could be reached; the first one's failure.
    #[error("cannot join the ring: {0}")]
    Join(DialFailure),
}

/// What the event loop is told to do.
#[derive(Debug)]
enum Command {
    /// Close every connection and end.
    Stop,
    /// Connect to this peer at this address, unless connected already.
    Dial(PeerId, Multiaddr),
}

/// Who this node is, as `status` reports it, and the capabilities it
/// takes when it is a gateway ([`gate`]).
#[derive(Debug)]
struct Me {
    id: String,
    addr: String,
    gate: Option<Arc<gate::Grants>>,
}

/// A running node. Dropping it stops the node too; [`Node::stop`] also
/// waits until it has.
#[derive(Debug)]
pub struct Node {
    peer_id: PeerId,
    address: Multiaddr,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    metrics: Arc<Metrics>,
    probe: Arc<dyn Probe>,
    opener: Opener,
    background: Vec<Background>,
    /// Dropped after `background`: the doors' files go last.
    doors: Vec<local::LocalDoor>,
}

/// Starts serving a bound local door: the accepting loop of
/// [`local::accept`] over the node's space, whatever its type.
#[derive(Clone)]
struct Opener(Arc<dyn Fn(local::Bound) -> BoxFuture<'static, ()> + Send + Sync>);

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opener")
    }
}

/// A task that lives as long as the node: aborted when the node goes.
#[derive(Debug)]
struct Background(AbortHandle);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for dyn Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}

impl Node {
    /// Starts a node with a fresh identity that serves `space` on `listen`,
    /// once the listener is up.
    pub async fn start<S: Served>(listen: Multiaddr, space: S) -> Result<Node, NodeError> {
        Node::start_with(listen, space, None).await
    }

    /// Like [`Node::start`], in the private overlay of the pre-shared key
    /// `secret` when there is one: only peers and clients holding the same
    /// key can connect.
    pub async fn start_with<S: Served>(
        listen: Multiaddr,
        space: S,
        secret: Option<PreSharedKey>,
    ) -> Result<Node, NodeError> {
        Node::start_as(listen, space, secret, Identity::generate()).await
    }

    /// Like [`Node::start_with`], as `identity`.
    pub async fn start_as<S: Served>(
        listen: Multiaddr,
        space: S,
        secret: Option<PreSharedKey>,
        identity: Identity,
    ) -> Result<Node, NodeError> {
        Node::launch(listen, secret, None, identity, &[], |_| space).await
    }

    /// Starts a job's gateway: a node outside any private overlay that
    /// serves `space` only to streams presenting a capability of `grants`,
    /// each as far as its grant allows ([`gate`]). Its clients never join
    /// a ring; a trusted node may serve the same space beside it.
    pub async fn start_gateway<S: Served>(
        listen: Multiaddr,
        space: S,
        grants: Arc<gate::Grants>,
    ) -> Result<Node, NodeError> {
        Node::launch(
            listen,
            None,
            Some(grants),
            Identity::generate(),
            &[],
            |_| space,
        )
        .await
    }

    /// Starts a node that joins the ring through `join` (or starts one
    /// when it is empty), each tuple held by `replicas` peers; the returned
    /// space leaves the ring gracefully through [`RingSpace::leave`].
    pub async fn start_ring(
        listen: Multiaddr,
        join: Vec<Multiaddr>,
        replicas: usize,
    ) -> Result<(Node, RingSpace), NodeError> {
        Node::start_ring_with(listen, join, replicas, None).await
    }

    /// Like [`Node::start_ring`], in the private overlay of `secret` when
    /// there is one. With `join`, the node first connects to one of those
    /// peers, and fails ([`NodeError::Join`]) if it reaches none of them: a
    /// peer with another key, or none, fails the handshake.
    pub async fn start_ring_with(
        listen: Multiaddr,
        join: Vec<Multiaddr>,
        replicas: usize,
        secret: Option<PreSharedKey>,
    ) -> Result<(Node, RingSpace), NodeError> {
        let config = crate::overlay::Config {
            replicas,
            ..crate::overlay::Config::default()
        };
        Node::start_ring_configured(listen, join, config, secret, Identity::generate()).await
    }

    /// Like [`Node::start_ring_with`], this peer run with `config` (its
    /// replicas and limits, such as [`crate::overlay::Config::max_tuples`])
    /// as `identity` (a stable peer id: [`Identity::load_or_create`]).
    pub async fn start_ring_configured(
        listen: Multiaddr,
        join: Vec<Multiaddr>,
        config: crate::overlay::Config,
        secret: Option<PreSharedKey>,
        identity: Identity,
    ) -> Result<(Node, RingSpace), NodeError> {
        let mut ring = None;
        let first = join.clone();
        let node = Node::launch(listen, secret, None, identity, &first, |link| {
            let space = RingSpace::start(link, join, config);
            ring = Some(space.clone());
            space
        })
        .await?;
        Ok((node, ring.expect("launch builds the space")))
    }

    /// Starts a node serving the space `build` makes once the listener is
    /// up and it is connected to one of `join` (if any).
    async fn launch<S: Served>(
        listen: Multiaddr,
        secret: Option<PreSharedKey>,
        gate: Option<Arc<gate::Grants>>,
        identity: Identity,
        join: &[Multiaddr],
        build: impl FnOnce(ring::Link) -> S,
    ) -> Result<Node, NodeError> {
        let keypair = identity.0;
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = net::swarm(keypair, secret)?;
        let listen_error = |reason: String| NodeError::Listen {
            addr: listen.clone(),
            reason,
        };
        let incoming = swarm
            .behaviour()
            .stream
            .new_control()
            .accept(PROTOCOL)
            .map_err(|e| listen_error(e.to_string()))?;
        swarm
            .listen_on(listen.clone())
            .map_err(|e| listen_error(e.to_string()))?;
        let bound = tokio::time::timeout(LISTEN_TIMEOUT, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                    SwarmEvent::ListenerError { error, .. } => return Err(error.to_string()),
                    SwarmEvent::ListenerClosed { reason, .. } => {
                        return Err(format!("listener closed: {reason:?}"));
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| listen_error("no address after 10s".into()))?
        .map_err(listen_error)?;
        let address = bound.with(Protocol::P2p(peer_id));
        reach_one(&mut swarm, join).await?;
        let me = Arc::new(Me {
            id: peer_id.to_string(),
            addr: address.to_string(),
            gate,
        });
        let (commands, receiver) = mpsc::channel(COMMANDS);
        let metrics = Arc::new(Metrics::default());
        let spin = Spin::start();
        let space = build(ring::Link {
            control: swarm.behaviour().stream.new_control(),
            dial: commands.clone(),
            address: address.clone(),
            spin: spin.clone(),
            metrics: metrics.clone(),
        });
        let span = tracing::info_span!("node", id = %peer_id);
        span.in_scope(|| tracing::info!(%address, "listening"));
        let probe: Arc<dyn Probe> = Arc::new(space.clone());
        let serving = Serving {
            space,
            me,
            spin,
            metrics: metrics.clone(),
            shares: Arc::new(Shares::default()),
        };
        let local = serving.clone();
        let opener = Opener(Arc::new(move |bound: local::Bound| {
            local::accept(bound.listener, bound.owner, local.clone()).boxed()
        }));
        let task = event_loop::run(swarm, incoming, receiver, serving);
        let task = tokio::spawn(task.instrument(span));
        Ok(Node {
            peer_id,
            address,
            commands,
            task,
            metrics,
            probe,
            opener,
            background: Vec::new(),
            doors: Vec::new(),
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The address clients dial: the bound listen address, ending in
    /// `/p2p/<peer id>`.
    pub fn address(&self) -> &Multiaddr {
        &self.address
    }

    /// Serves this node's metrics (Prometheus text at `/metrics`) on
    /// `addr` for as long as the node runs; returns the bound address.
    pub async fn serve_metrics(&mut self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let span = tracing::info_span!("metrics", %bound);
        let task = metrics::http::serve(listener, self.metrics.clone(), self.probe.clone());
        let task = tokio::spawn(task.instrument(span));
        self.background.push(Background(task.abort_handle()));
        Ok(bound)
    }

    /// Also serves the space on a Unix-domain socket at `path` (the local
    /// door, [`local`]) for as long as the node runs, to processes of this
    /// user (or root); returns the socket's absolute path. A stale socket
    /// there is replaced; any other file is refused.
    pub async fn serve_unix(&mut self, path: &Path) -> Result<PathBuf, LocalDoorError> {
        let absolute = std::path::absolute(path).map_err(|e| LocalDoorError {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let bound = local::bind(&absolute).await?;
        let span = tracing::info_span!("node", id = %self.peer_id);
        span.in_scope(|| tracing::info!(path = %absolute.display(), "local door open"));
        let task = tokio::spawn((self.opener.0)(bound).instrument(span));
        self.doors.push(local::LocalDoor {
            task: task.abort_handle(),
            path: absolute.clone(),
        });
        Ok(absolute)
    }

    /// Closes every connection and waits for the event loop to end.
    pub async fn stop(self) {
        // A failed send means the loop has ended already.
        let _ = self.commands.send(Command::Stop).await;
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the node's event loop failed");
        }
    }
}

/// A space relayed to a peer: a gateway in front of a ring (a `--peer`
/// job's) holds no tuple itself, and its status is the peer's.
impl Served for crate::client::RemoteSpace {
    fn tuple_count(&self) -> u64 {
        0
    }

    async fn status(&self) -> Option<crate::wire::Status> {
        crate::client::RemoteSpace::status(self).await.ok()
    }

    async fn members(&self) -> Vec<crate::wire::RingMember> {
        crate::client::RemoteSpace::members(self)
            .await
            .unwrap_or_default()
    }
}

impl Served for crate::embedded::EmbeddedSpace {
    fn tuple_count(&self) -> u64 {
        self.len() as u64
    }
}

/// Connects to one of `join` (trying them in turn), or says why the first
/// could not be reached; nothing to do without any.
async fn reach_one(
    swarm: &mut libp2p::Swarm<net::Behaviour>,
    join: &[Multiaddr],
) -> Result<(), NodeError> {
    let mut first = None;
    for addr in join {
        match net::dial(swarm, addr, JOIN_TIMEOUT).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach a peer to join");
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(()), |e| Err(NodeError::Join(e)))
}
