//! `halley node`: run one peer of the space until SIGINT/SIGTERM.
//!
//! It prints exactly one line on stdout, `listening
//! <multiaddr>/p2p/<peer-id>`, once clients can connect. With `--join` (or
//! `--ring`, for a ring's first peer) it serves its share of a ring of
//! peers and, on SIGINT/SIGTERM, hands its tuples over and leaves; without
//! either it serves an embedded space of its own (whose takes can be
//! cancelled, which the ring's cannot yet). With `--secret-file` it serves
//! a private overlay: only peers and clients holding the same key connect,
//! and a `--join` through a peer with another key (or none) fails.
//! `--metrics` serves counters in Prometheus's text format over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use halley_substrate::embedded::EmbeddedSpace;
use halley_substrate::net::PreSharedKey;
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
    /// Start a ring others can join (implied by --join).
    #[arg(long)]
    ring: bool,
    /// How many peers hold each tuple, in a ring.
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
}

pub fn run(args: Args) -> Outcome {
    let secret = check(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::unreachable)?;
    runtime.block_on(serve(args, secret))
}

/// Refuses bad overlay flags, and reads the secret.
fn check(args: &Args) -> Result<Option<PreSharedKey>, Failure> {
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
    Ok(secret)
}

async fn serve(args: Args, secret: Option<PreSharedKey>) -> Outcome {
    let started = if !args.ring && args.join.is_empty() {
        Node::start_with(args.listen, EmbeddedSpace::new(), secret)
            .await
            .map(|node| (node, None))
    } else {
        let replicas = usize::try_from(args.replicas).unwrap_or(usize::MAX);
        Node::start_ring_with(args.listen, args.join, replicas, secret)
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
    announce(&node)?;
    stopped().await.map_err(Failure::unreachable)?;
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

/// Waits for SIGINT or SIGTERM.
async fn stopped() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("node: SIGTERM handler")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("node: SIGINT handler"),
        _ = term.recv() => Ok(()),
    }
}
