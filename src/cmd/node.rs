//! `halley node`: run one peer of the space until SIGINT/SIGTERM.
//!
//! It prints exactly one line on stdout, `listening
//! <multiaddr>/p2p/<peer-id>`, once clients can connect. Every node is a
//! peer of a ring: without `--join` it is the first (and, until others
//! join it, the only) one, and the printed address can be passed to other
//! nodes' `--join`. On SIGINT/SIGTERM it hands its tuples over and leaves.
//! `--ring` (once needed for a ring's first peer) is still accepted and
//! changes nothing; `--solo` serves a space of this machine alone, without
//! the overlay (not joinable). With `--secret-file` it serves a private overlay: only
//! peers and clients holding the same key connect, and a `--join` through a
//! peer with another key (or none) fails. `--metrics` serves counters in
//! Prometheus's text format over HTTP. `--max-tuples` bounds what the node
//! holds: writes past it are refused. `--key-file` keeps the node's
//! identity, so its peer id and address survive a restart. `--unix` also
//! serves the space on a Unix socket to this user's local processes (the
//! local door, without noise and yamux); its address `/unix/<path>` is
//! logged on stderr.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use halley_substrate::embedded::EmbeddedSpace;
use halley_substrate::net::PreSharedKey;
use halley_substrate::node::Identity;
use halley_substrate::overlay::Config;
use halley_substrate::store::Limits;
use halley_substrate::{Multiaddr, Node};

use crate::exit::{Failure, Outcome, SUCCESS};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address to listen on; /ip4/127.0.0.1/tcp/0 picks a free port.
    #[arg(long)]
    listen: Multiaddr,
    /// A peer of the ring to join: its `listening` address, ending in
    /// /p2p/<peer-id>. May be repeated.
    #[arg(long)]
    join: Vec<Multiaddr>,
    /// Accepted for older scripts; every node is a ring peer others can join.
    #[arg(long, hide = true)]
    ring: bool,
    /// Serve this machine's space alone, without the overlay: not joinable,
    /// no replicas, but the shortest path for a single peer (the space
    /// `halley run` serves its workers).
    #[arg(long, conflicts_with_all = ["join", "ring"])]
    solo: bool,
    /// How many peers hold each tuple.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    replicas: u32,
    /// The cluster's pre-shared key, in the libp2p key file format
    /// (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits): only peers and
    /// clients holding the same key can connect.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Where to serve metrics (Prometheus text at http://<host:port>/metrics).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Hold at most this many tuples as their primary (a ring peer also
    /// holds up to about (replicas - 1) times as many copies); a write past
    /// it is refused (exit 2, "the space is full") instead of growing.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_tuples: Option<u64>,
    /// Keep the node's identity in this file (created with a fresh key,
    /// mode 0600, if missing): its peer id, and so its address, stays the
    /// same across restarts.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Take no part in spreading the load: never ask another peer to move,
    /// and stay at the place this peer's id gives when asked to.
    #[arg(long, conflicts_with = "solo")]
    no_balance: bool,
    /// Also serve the space on a Unix-domain socket at this path, to
    /// processes of this user (or root) only: clients connect with
    /// `--peer /unix/<absolute path>`, skipping libp2p's encryption and
    /// multiplexing. The file is made mode 0600 and removed on exit; a
    /// stale socket there is replaced, any other file refused.
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
}

pub fn run(args: Args) -> Outcome {
    let (secret, identity) = check(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::unreachable)?;
    runtime.block_on(serve(args, secret, identity))
}

/// Refuses bad overlay flags, and reads the secret.
fn check(args: &Args) -> Result<(Option<PreSharedKey>, Identity), Failure> {
    for peer in &args.join {
        if !matches!(
            peer.iter().last(),
            Some(halley_substrate::net::Protocol::P2p(_))
        ) {
            return Err(Failure::bad_input(anyhow!(
                "node: --join {peer}: the address must end in /p2p/<peer-id>"
            )));
        }
    }
    let secret = super::secret::load("node", args.secret_file.as_deref())?;
    let identity = match &args.key_file {
        Some(path) => Identity::load_or_create(path)
            .map_err(|e| Failure::bad_input(anyhow!("node: --key-file {e}")))?,
        None => Identity::generate(),
    };
    Ok((secret, identity))
}

async fn serve(args: Args, secret: Option<PreSharedKey>, identity: Identity) -> Outcome {
    let replicas = usize::try_from(args.replicas).unwrap_or(usize::MAX);
    let max_tuples = args.max_tuples.map_or(Limits::default().max_tuples, |n| {
        usize::try_from(n).unwrap_or(usize::MAX)
    });
    let started = if args.solo {
        let limits = Limits {
            max_tuples,
            ..Limits::default()
        };
        Node::start_as(
            args.listen,
            EmbeddedSpace::with_limits(limits),
            secret,
            identity,
        )
        .await
        .map(|node| (node, None))
    } else {
        let config = Config {
            replicas,
            max_tuples,
            balance: !args.no_balance,
            ..Config::default()
        };
        Node::start_ring_configured(args.listen, args.join, config, secret, identity)
            .await
            .map(|(node, ring)| (node, Some(ring)))
    };
    let (mut node, ring) = started.map_err(|e| Failure::unreachable(anyhow!("node: {e}")))?;
    if let Some(addr) = args.metrics {
        let bound = node
            .serve_metrics(addr)
            .await
            .map_err(|e| Failure::unreachable(anyhow!("node: --metrics {addr}: {e}")))?;
        eprintln!("halley: node: metrics at http://{bound}/metrics");
    }
    if let Some(path) = &args.unix {
        let path = node
            .serve_unix(path)
            .await
            .map_err(|e| Failure::bad_input(anyhow!("node: --unix: {e}")))?;
        eprintln!(
            "halley: node: local door at {}",
            halley_substrate::client::local_address(&path)
        );
    }
    // Handlers first: a signal sent as soon as the line is read is ours.
    let stopped = stopped().map_err(Failure::unreachable)?;
    announce(&node)?;
    stopped.await;
    if let Some(ring) = ring {
        ring.leave().await;
    }
    node.stop().await;
    Ok(SUCCESS)
}

/// Prints the one `listening` line, flushed so a parent reading a pipe sees
/// it now.
fn announce(node: &Node) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening {}", node.address())
        .and_then(|()| stdout.flush())
        .context("node: writing to stdout")
        .map_err(Failure::unreachable)
}

/// Installs the SIGINT and SIGTERM handlers; the future ends at either.
fn stopped() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("node: SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("node: SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
