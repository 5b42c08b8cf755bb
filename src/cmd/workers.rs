//! The workers of a job of shell commands, started and stopped by the
//! autonomic manager: shared by `halley run` (a bag), `halley mapreduce`
//! (map and reduce tasks as `halley mr-task` lines) and `halley workflow`
//! (every stage's tasks).
//!
//! Who talks to whom: [`with_space`] gives the job a space its worker
//! processes reach ([`SpaceArgs`]: `--peer` and its `--secret-file`, or an
//! embedded space on `--listen`, private under a fresh per-job key when
//! the policy has a `command` class; [`Reach`] says how workers get
//! there: the address, HALLEY_JOIN and the key). When the policy has paid
//! classes (`local`, `command`), the space is served twice: to the trusted
//! (`static`) workers (an embedded space on 127.0.0.1 under the job's key,
//! or the `--peer` itself), and on `--listen` by a [`Gateway`] where paid
//! machines present the job's capability (`halley_substrate::node::gate`),
//! revoked when the job ends; with `--peer` the gateway relays to the
//! peer. The job's loop submits tasks through a
//! [`halley_paradigms::master::Master`] and, through [`Results`], hands
//! results, counters and heartbeats to a [`WorkerPool`] ([`pool`]); the
//! pool is the manager's ([`managed::ManagedPool`]), which starts `halley
//! worker` processes per the policy and accounts for every machine.
//! [`progress::Display`] draws the progress line with the pool's status
//! (workers by class, spend, projected finish against the deadline).

mod door;
pub mod interrupt;
pub mod managed;
pub mod pool;
pub mod progress;
pub mod results;
pub mod running;

pub use managed::{MachineRecord, ManagedPool};
pub use pool::{StageDue, WorkerPool};
pub use progress::Display;
pub use results::{Results, with_pending};

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use halley_autonomic::policy::{Policy, ProviderKind};
use halley_paradigms::master::{Master, MasterError, Progress};
use halley_substrate::embedded::EmbeddedSpace;
use halley_substrate::net::{PreSharedKey, Protocol};
use halley_substrate::node::gate::Grants;
use halley_substrate::node::{Node, Served};
use halley_substrate::{Multiaddr, PeerId, Space};

use crate::exit::{Failure, Outcome};

/// Where a job's space is, as `run`, `mapreduce` and `workflow` take it.
#[derive(Debug, clap::Args)]
pub struct SpaceArgs {
    /// Submit to this space (a peer's multiaddr, as `halley node` prints
    /// it) instead of serving an embedded one.
    #[arg(long)]
    pub peer: Option<String>,
    /// With `--peer`: the private overlay's pre-shared key, as the peer was
    /// given it; the workers started hold it too, and a `command` class's
    /// start script gets it as HALLEY_TOKEN.
    #[arg(long, requires = "peer")]
    pub secret_file: Option<PathBuf>,
    /// Where the embedded space listens, or with `--peer` the job's
    /// gateway for machines of paid classes. Machines of a `command` class
    /// (cloud machines) need an address they can reach, e.g.
    /// /ip4/0.0.0.0/tcp/7000 with `--advertise`.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0")]
    pub listen: Multiaddr,
    /// The address machines of a `command` class dial (an IP address,
    /// e.g. /ip4/203.0.113.5/tcp/7000: no DNS names), without /p2p: their
    /// HALLEY_JOIN is it with /p2p/<the job's peer id>. Default: the
    /// address the space (or with `--peer`, the gateway) is bound to.
    #[arg(long)]
    pub advertise: Option<Multiaddr>,
    /// Give machines of paid classes (`local`, `command`) the job's key
    /// (with `--peer`, the overlay's), as trusted workers, instead of a
    /// capability at the job's gateway (the default: they can then only
    /// take the job's tasks and put its results).
    #[arg(long)]
    pub trusted_workers: bool,
}

/// What a policy asks of the job's space.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// A `command` class: machines anywhere must reach the space.
    pub private: bool,
    /// A paid class (`local`, `command`): its machines are isolated.
    pub isolate: bool,
}

impl Needs {
    pub fn of(policy: &Policy) -> Needs {
        Needs {
            private: has_command_class(policy),
            isolate: policy
                .resources
                .iter()
                .any(|r| matches!(r.provider, ProviderKind::Local | ProviderKind::Command)),
        }
    }
}

/// The job's gateway: where paid machines present the job's capability.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The address the paid workers this machine starts dial.
    pub peer: String,
    /// The address machines of `command` classes dial: HALLEY_JOIN.
    pub join: String,
    /// Where the job's capability is issued (and revoked).
    pub grants: Arc<Grants>,
}

/// How the job's workers reach its space.
#[derive(Debug, Clone)]
pub struct Reach {
    /// The address the workers this machine starts dial.
    pub peer: String,
    /// The address machines of `command` classes dial: HALLEY_JOIN.
    pub join: String,
    /// The private overlay's key: every trusted worker needs it
    /// (HALLEY_TOKEN).
    pub key: Option<PreSharedKey>,
    /// Where paid machines go instead, when they are isolated.
    pub gateway: Option<Gateway>,
    /// The embedded space's local door (a Unix socket, `/unix/<path>`):
    /// the workers this machine starts dial it in place of `peer`, with
    /// no encryption or multiplexing to pay for.
    pub local: Option<String>,
}

/// A job that needs a space its worker processes can reach.
pub(crate) trait SpaceJob {
    /// Runs the job on `space`, which its workers reach as `reach` says.
    async fn with<S: Space>(self, space: S, reach: Reach) -> Outcome;
}

/// A fresh job id: `<kind>-<pid>-<µs>`, so jobs sharing a space never mix.
pub fn job_id(kind: &str) -> String {
    format!(
        "{kind}-{}-{}",
        std::process::id(),
        halley_paradigms::task::now_us()
    )
}

/// The failure of a job whose space went away.
pub fn lost(e: MasterError) -> Failure {
    Failure::unreachable(anyhow!(e).context("lost the space"))
}

/// Whether `policy` has a `command` or `slurm` class: machines started by
/// scripts or a batch queue, anywhere, which must reach the job's space and
/// hold its key.
pub fn has_command_class(policy: &Policy) -> bool {
    policy
        .resources
        .iter()
        .any(|r| matches!(r.provider, ProviderKind::Command | ProviderKind::Slurm))
}

/// Runs `job` on a runtime of its own (two threads: the loop and the
/// space), with the space of `--peer` (reached with the key of
/// `--secret-file`, if any), or without it an embedded space: served on
/// `--listen` — in a private overlay of a fresh random key when
/// `needs.private` (the policy has a `command` class) — or, when
/// `needs.isolate` (paid classes, without `--trusted-workers`), served to
/// trusted workers on 127.0.0.1 under a fresh key and by a gateway on
/// `--listen`; with `--peer` and `needs.isolate`, the gateway on `--listen`
/// relays to the peer. `command` names the subcommand in messages.
pub(crate) fn with_space(
    command: &str,
    args: &SpaceArgs,
    needs: Needs,
    job: impl SpaceJob,
) -> Outcome {
    let isolate = needs.isolate && !args.trusted_workers;
    let key = match &args.peer {
        Some(_) => super::secret::load(command, args.secret_file.as_deref())?,
        None => (needs.private || isolate).then(super::token::fresh),
    };
    let advertise = advertised(command, args.advertise.as_ref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::unreachable)?;
    runtime.block_on(async {
        // From here a signal stops the job in order, not the process.
        interrupt::listen();
        match &args.peer {
            Some(peer) => {
                let space = super::worker::connect(peer, key).await?;
                if !isolate {
                    let reach = Reach {
                        peer: peer.clone(),
                        join: peer.clone(),
                        key,
                        gateway: None,
                        local: None,
                    };
                    return job.with(space, reach).await;
                }
                // Paid machines never hold the overlay's key: they reach
                // a gateway this process serves on --listen, which relays
                // what their capability allows to the peer.
                let (node, gateway) =
                    open_gateway(command, &args.listen, advertise, space.clone()).await?;
                tracing::info!(join = %gateway.join, "machines of paid classes reach the job's gateway");
                let reach = Reach {
                    peer: peer.clone(),
                    join: peer.clone(),
                    key,
                    gateway: Some(gateway.clone()),
                    local: None,
                };
                let outcome = job.with(space, reach).await;
                close_gateway(node, &gateway).await;
                outcome
            }
            None => {
                let space = EmbeddedSpace::new();
                let listen = &args.listen;
                let (mut node, gateway) = if isolate {
                    let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr");
                    let node = Node::start_with(loopback.clone(), space.clone(), key)
                        .await
                        .map_err(serve_error(command, "the trusted workers' address", &loopback))?;
                    let gateway =
                        open_gateway(command, listen, advertise.clone(), space.clone()).await?;
                    (node, Some(gateway))
                } else {
                    let node = Node::start_with(listen.clone(), space.clone(), key)
                        .await
                        .map_err(serve_error(command, "--listen", listen))?;
                    (node, None)
                };
                let peer = node.address().to_string();
                let join = match &gateway {
                    Some((_, gateway)) => gateway.join.clone(),
                    None => join_address(advertise.clone(), &peer, node.peer_id()),
                };
                if needs.private || isolate {
                    tracing::info!(%join, "machines of paid classes reach the job's space");
                    if advertise.is_none() && unspecified(listen) {
                        tracing::warn!(
                            %join,
                            "--listen {listen} binds every interface, and HALLEY_JOIN is the address \
                             libp2p reported; give --advertise with the address the machines reach"
                        );
                    }
                }
                let local = door::open(&mut node).await;
                let reach = Reach {
                    peer,
                    join,
                    key,
                    gateway: gateway.as_ref().map(|(_, g)| g.clone()),
                    local,
                };
                let outcome = job.with(space, reach).await;
                if let Some((gateway_node, gateway)) = gateway {
                    close_gateway(gateway_node, &gateway).await;
                }
                node.stop().await;
                outcome
            }
        }
    })
}

/// What to say when a node of the job cannot listen on `addr` (given by
/// `flag`).
fn serve_error(
    command: &str,
    flag: &str,
    addr: &Multiaddr,
) -> impl FnOnce(halley_substrate::node::NodeError) -> Failure {
    let context = format!("{command}: {flag} {addr}: cannot serve the job's space");
    move |e| Failure::unreachable(anyhow!(e).context(context))
}

/// Starts the job's gateway on `listen`: it serves `space` to machines
/// presenting a capability of fresh [`Grants`] (the space itself, or a
/// relay to a `--peer`); the node, and how paid machines reach it.
async fn open_gateway<S: Served>(
    command: &str,
    listen: &Multiaddr,
    advertise: Option<Multiaddr>,
    space: S,
) -> Result<(Node, Gateway), Failure> {
    let grants = Arc::new(Grants::default());
    let node = Node::start_gateway(listen.clone(), space, grants.clone())
        .await
        .map_err(serve_error(command, "--listen", listen))?;
    let peer = node.address().to_string();
    let join = join_address(advertise, &peer, node.peer_id());
    Ok((node, Gateway { peer, join, grants }))
}

/// The job is over: its capabilities no longer open anything, and the
/// gateway stops.
async fn close_gateway(node: Node, gateway: &Gateway) {
    gateway.grants.revoke_all();
    node.stop().await;
}

/// HALLEY_JOIN: the `--advertise` address with the space's peer id, or
/// without it the address the space is bound to (`bound`).
fn join_address(advertise: Option<Multiaddr>, bound: &str, id: PeerId) -> String {
    match advertise {
        Some(addr) => addr.with(Protocol::P2p(id)).to_string(),
        None => bound.to_owned(),
    }
}

/// `--advertise`, refused when it names a peer id (the job's is fresh).
fn advertised(command: &str, addr: Option<&Multiaddr>) -> Result<Option<Multiaddr>, Failure> {
    match addr {
        Some(addr) if addr.iter().any(|p| matches!(p, Protocol::P2p(_))) => {
            Err(Failure::bad_input(anyhow!(
                "{command}: --advertise {addr}: expected an address without /p2p/<peer-id> \
                 (the job's space has a fresh peer id, appended for HALLEY_JOIN)"
            )))
        }
        other => Ok(other.cloned()),
    }
}

/// Whether `addr` listens on every interface (0.0.0.0 or ::).
fn unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// One tick of a job's loop while no result came: the workers heard from
/// and the job's counters (`progress`: the master's, with the tasks still
/// to come) go to the pool, whose decisions go to the log; returns the
/// pool's status for the progress line and the slots the workers say are
/// busy.
pub async fn tick<S: Space>(
    master: &Master<S>,
    pool: &mut impl WorkerPool,
    display: &Display,
    progress: &Progress,
) -> Result<(String, usize), MasterError> {
    let workers = master.workers().await?;
    for decision in pool.tick(progress, &workers) {
        display.log(&decision.to_string());
    }
    let busy = workers.iter().map(|w| w.busy_slots as usize).sum();
    Ok((pool.status(progress), busy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertised_address_is_taken_without_a_peer_id() {
        let addr: Multiaddr = "/ip4/203.0.113.5/tcp/7000".parse().unwrap();
        assert_eq!(advertised("run", Some(&addr)).unwrap(), Some(addr.clone()));
        let id = PeerId::random();
        let bound = format!("/ip4/127.0.0.1/tcp/41703/p2p/{id}");
        assert_eq!(
            join_address(Some(addr), &bound, id),
            format!("/ip4/203.0.113.5/tcp/7000/p2p/{id}")
        );
        assert_eq!(join_address(None, &bound, id), bound);
        assert_eq!(advertised("run", None).unwrap(), None);
        let with_id: Multiaddr =
            "/ip4/203.0.113.5/tcp/7000/p2p/12D3KooWGc54TNMxEwrvDtws1sy8mrPZSLe3AHQRSgvrAAbsbJCi"
                .parse()
                .unwrap();
        let err = advertised("workflow", Some(&with_id)).unwrap_err();
        assert_eq!(err.code, crate::exit::BAD_INPUT);
        let message = format!("{:#}", err.error);
        assert!(
            message.starts_with("workflow: --advertise /ip4/203.0.113.5"),
            "{message}"
        );
        assert!(message.contains("without /p2p/<peer-id>"), "{message}");
    }

    #[test]
    fn every_interface_is_0_0_0_0_or_the_ipv6_any() {
        let any = |text: &str| unspecified(&text.parse().unwrap());
        assert!(any("/ip4/0.0.0.0/tcp/7000"));
        assert!(any("/ip6/::/tcp/0"));
        assert!(!any("/ip4/127.0.0.1/tcp/0"));
        assert!(!any("/ip4/10.0.0.2/tcp/7000"));
    }

    #[test]
    fn only_a_command_class_makes_the_space_private() {
        let text = "[[resources]]\nname = \"a\"\nprovider = \"static\"\ncount = 1\n\
                    [[resources]]\nname = \"b\"\nprovider = \"command\"\nmax = 1\n\
                    start = \"true\"\nstop = \"true\"\n";
        assert!(has_command_class(&Policy::parse("p", text).unwrap()));
        assert!(!has_command_class(&Policy::builtin()));
    }

    #[test]
    fn paid_classes_isolate_their_machines_and_static_ones_do_not() {
        let needs = |text: &str| Needs::of(&Policy::parse("p", text).unwrap());
        let local = "[[resources]]\nname = \"c\"\nprovider = \"local\"\nmax = 2\n";
        assert!(needs(local).isolate && !needs(local).private);
        let command = "[[resources]]\nname = \"b\"\nprovider = \"command\"\nmax = 1\n\
                       start = \"true\"\nstop = \"true\"\n";
        assert!(needs(command).isolate && needs(command).private);
        let builtin = Needs::of(&Policy::builtin());
        assert!(!builtin.isolate && !builtin.private);
    }
}
