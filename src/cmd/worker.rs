//! `halley worker`: a worker process that reaches a space through `--peer`
//! and runs shell-command tasks with `sh -c`, up to `--slots` at once.
//!
//! A private overlay's key, or a job's capability at its gateway, comes
//! from one of `--token`/`HALLEY_TOKEN`, `--token-file` or
//! `--secret-file`/`HALLEY_SECRET_FILE` ([`super::token`]): a machine a
//! `command` class's start script booted needs only `HALLEY_JOIN` and
//! `HALLEY_TOKEN`. With a capability the worker presents it to the
//! gateway and works for its job only (`--job`, if given, must be it).
//!
//! Without `--job` it takes the tasks of every job in the space. Each result
//! carries the exit code, timings, this worker's id and `--resource`, and
//! the first `--max-output` bytes of stdout and stderr (see
//! `halley_paradigms::bag`). It exits 0 when told to stop (a
//! `("stop", <worker id>)` tuple, or `("stop", <job>)` with `--job`) or on
//! SIGTERM/SIGINT (after finishing what it runs: a drain; a second signal
//! kills the running tasks), when its job is aborted (`("abort", <job>)`
//! with `--job`), and 3 when the space goes away or cannot be reached.
//! Each task runs in a process group of its own ([`halley_paradigms::shell`]),
//! with `HALLEY_TASK_ID` and `HALLEY_JOB_ID` in its environment, under the
//! time limit, retries and directory its payload asks for
//! ([`TaskSpec`]). A task killed by the same signal as its worker (a batch
//! system's `scancel`, time limit or preemption signals every process of
//! the job at once) is not reported: the worker exits 1 at once, as if it
//! had vanished, and the task's lease lapses, so it runs again elsewhere.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;

use halley_paradigms::bag::{DEFAULT_OUTPUT_CAP, TaskSpec};
use halley_paradigms::worker::{Worker, WorkerError};
use halley_substrate::Multiaddr;
use halley_substrate::client::{ConnectError, DirectSpace, RemoteSpace};
use halley_substrate::net::PreSharedKey;
use halley_substrate::{Space, SpaceError};

use super::token::{Credential, Sources, credential_of};

use crate::exit::{Failure, Outcome, SUCCESS};

/// How long to wait for the peer to answer when connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A peer of the space (its multiaddr, as `halley node` prints it), or
    /// a node's local door `/unix/<path>`.
    #[arg(long, env = "HALLEY_JOIN")]
    pub peer: String,
    /// Tasks run at once.
    #[arg(long, default_value_t = 1, value_parser = super::counts::slots)]
    pub slots: u32,
    /// The resource class reported with each result.
    #[arg(long, env = "HALLEY_RESOURCE", default_value = "local")]
    pub resource: String,
    /// The job's token (what a `command` class's start script gets as
    /// HALLEY_TOKEN): the private overlay's key as 64 hex digits, or the
    /// job's capability at its gateway (`hcap1-…`). Default: the
    /// HALLEY_TOKEN environment variable, when set and not empty; prefer it
    /// (or --token-file) to this flag, which other users see in `ps`.
    #[arg(long)]
    pub token: Option<String>,
    /// A file holding the token (64 hex digits; surrounding whitespace is
    /// trimmed).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The private overlay's pre-shared key, as the peer was given it
    /// (`halley node --secret-file`). Default: the HALLEY_SECRET_FILE
    /// environment variable, when set and not empty. Only one of --token,
    /// --token-file and --secret-file (or their variables) may be given.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Take only this job's tasks (and stop on `("stop", <job>)`).
    #[arg(long)]
    pub job: Option<String>,
    /// This worker's id (default: `<host>-<pid>-0`).
    #[arg(long, env = "HALLEY_MACHINE")]
    pub id: Option<String>,
    /// How long a claim on running tasks lives without renewal.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub lease: Duration,
    /// The most tasks a slot takes at once. Commands vary in length, so the
    /// default, 1, balances best; raise it for floods of tiny commands. (A
    /// chunk counts as one: a master packs only tasks it measured under
    /// half a millisecond.)
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Bytes of stdout and of stderr kept in each result.
    #[arg(long, default_value_t = DEFAULT_OUTPUT_CAP)]
    pub max_output: usize,
    /// Send each operation straight to the ring peer that holds what it
    /// touches, connecting to every peer of the ring (as a Redis Cluster
    /// client does) instead of through --peer alone. Not with a job's
    /// capability: its gateway is the one door such a worker has.
    #[arg(long)]
    pub direct: bool,
}

pub fn run(args: Args) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::unreachable)?;
    runtime.block_on(async move {
        match credential(&args)? {
            Some(Credential::Capability(capability)) => {
                let job = capability.label().to_owned();
                if args.direct {
                    return Err(Failure::bad_input(anyhow!(
                        "worker: --direct: a worker holding a job's capability reaches the \
                         space through its gateway only"
                    )));
                }
                if let Some(given) = args.job.as_ref().filter(|given| **given != job) {
                    return Err(Failure::bad_input(anyhow!(
                        "worker: --job {given}: the capability is for job {job}"
                    )));
                }
                let space = connect(&args.peer, None).await?;
                space.present(&capability.to_string()).await.map_err(|e| {
                    Failure::unreachable(anyhow!(e).context(format!(
                        "the gateway at {} refused the capability",
                        args.peer
                    )))
                })?;
                work(
                    space,
                    Args {
                        job: Some(job),
                        ..args
                    },
                )
                .await
            }
            Some(Credential::Key(key)) if args.direct => {
                work(connect_direct(&args.peer, Some(key)).await?, args).await
            }
            Some(Credential::Key(key)) => work(connect(&args.peer, Some(key)).await?, args).await,
            None if args.direct => work(connect_direct(&args.peer, None).await?, args).await,
            None => work(connect(&args.peer, None).await?, args).await,
        }
    })
}

async fn work<S: Space>(space: S, args: Args) -> Outcome {
    let worker = match &args.job {
        Some(job) => Worker::new(space, job.clone()),
        None => Worker::any_job(space),
    };
    let worker = match args.id {
        Some(id) => worker.with_id(id),
        None => worker,
    };
    let worker = worker
        .slots(args.slots as usize)
        .resource(args.resource)
        .lease(args.lease)
        .max_batch(args.batch);
    let id = worker.id().to_owned();
    let stopper = worker.stopper();
    let (abort_tx, abort_rx) = tokio::sync::oneshot::channel();
    let (signalled, told) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut signals = Signals::new();
        signals.next().await;
        tracing::info!("signal received: draining");
        let _ = signalled.send(true);
        stopper.stop();
        signals.next().await;
        let _ = abort_tx.send(());
    });
    tracing::info!(worker = %id, peer = %args.peer, "worker started");
    let cap = args.max_output;
    let work = worker.run_async(move |task| {
        let told = told.clone();
        async move {
            let output = TaskSpec::decode(&task.payload)
                .shell(cap, &task.job, task.id)
                .run()
                .await;
            if killed_with_its_worker(output.exit_code, told).await {
                tracing::warn!(
                    task = task.id,
                    "the task was killed by the signal that stops this worker: \
                     not reported, it runs again elsewhere"
                );
                std::process::exit(1);
            }
            output.encode()
        }
    });
    let report = tokio::select! {
        report = work => report,
        _ = abort_rx => {
            // Dropping the work killed every running task's process group.
            tracing::warn!(worker = %id, "second signal: running tasks killed");
            return Ok(SUCCESS);
        }
    };
    match report {
        Ok(report) => {
            tracing::info!(worker = %id, tasks = report.tasks, "worker stopped");
            Ok(SUCCESS)
        }
        // A gateway that no longer takes the capability (revoked), or
        // refuses what it asked.
        Err(WorkerError::Space(SpaceError::Refused(why))) => Err(Failure::unreachable(anyhow!(
            "worker {id}: the space at {} refused a request: {why}",
            args.peer
        ))),
        Err(WorkerError::Space(e)) => Err(Failure::unreachable(
            anyhow::Error::new(e)
                .context(format!("worker {id}: the space at {} went away", args.peer)),
        )),
        Err(e) => Err(Failure::unreachable(
            anyhow::Error::new(e).context("worker failed"),
        )),
    }
}

/// Whether a task that exited `exit_code` died of SIGTERM, SIGINT or
/// SIGKILL while (or within a second before) this worker received its
/// own SIGTERM or SIGINT (`told`).
async fn killed_with_its_worker(
    exit_code: i32,
    mut told: tokio::sync::watch::Receiver<bool>,
) -> bool {
    const BY_SIGNAL: [i32; 3] = [128 + 2, 128 + 9, 128 + 15];
    BY_SIGNAL.contains(&exit_code)
        && tokio::time::timeout(Duration::from_secs(1), told.wait_for(|told| *told))
            .await
            .is_ok_and(|r| r.is_ok())
}

/// SIGTERM and SIGINT: the first makes the worker drain (finish its
/// batches, take no more, exit 0), the second kills its running tasks and
/// exits 0 at once.
struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Signals(
            signal(SignalKind::terminate())
                .ok()
                .zip(signal(SignalKind::interrupt()).ok()),
        )
    }

    /// Returns at the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        match &mut self.0 {
            Some((term, int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            None => std::future::pending().await,
        }
    }
}

/// The overlay's key or the job's capability from the one source given:
/// `--token`, HALLEY_TOKEN, `--token-file`, `--secret-file` or
/// HALLEY_SECRET_FILE (an empty variable counts as not set).
fn credential(args: &Args) -> Result<Option<Credential>, Failure> {
    let env_token = std::env::var("HALLEY_TOKEN").ok().filter(|t| !t.is_empty());
    let env_secret = std::env::var_os("HALLEY_SECRET_FILE")
        .filter(|f| !f.is_empty())
        .map(PathBuf::from);
    let token = match (&args.token, &env_token) {
        (Some(token), _) => Some((token.as_str(), "--token")),
        (None, Some(token)) => Some((token.as_str(), "HALLEY_TOKEN")),
        (None, None) => None,
    };
    let secret_file = match (&args.secret_file, &env_secret) {
        (Some(file), _) => Some((file.as_path(), "--secret-file")),
        (None, Some(file)) => Some((file.as_path(), "HALLEY_SECRET_FILE")),
        (None, None) => None,
    };
    let sources = Sources {
        token,
        token_file: args.token_file.as_deref(),
        secret_file,
    };
    credential_of("worker", &sources)
}

/// Connects to the space at `peer`, holding `key` if any; exit 2 for a
/// malformed address, 3 when the peer cannot be reached (a refused
/// handshake: most likely a missing or wrong key).
pub(crate) async fn connect(peer: &str, key: Option<PreSharedKey>) -> Result<RemoteSpace, Failure> {
    let addr = address(peer)?;
    RemoteSpace::connect_with(addr, CONNECT_TIMEOUT, key)
        .await
        .map_err(|e| unreachable(peer, e))
}

/// Like [`connect`], for a [`DirectSpace`] entering the ring at `peer`.
async fn connect_direct(peer: &str, key: Option<PreSharedKey>) -> Result<DirectSpace, Failure> {
    let addr = address(peer)?;
    DirectSpace::connect_with(addr, CONNECT_TIMEOUT, key)
        .await
        .map_err(|e| unreachable(peer, e))
}

fn address(peer: &str) -> Result<Multiaddr, Failure> {
    halley_substrate::client::parse_address(peer)
        .map_err(|e| Failure::bad_input(anyhow!("--peer {peer}: not a multiaddr: {e}")))
}

fn unreachable(peer: &str, e: ConnectError) -> Failure {
    match e {
        // Says "cannot reach <addr>: …" itself.
        ConnectError::Reach(_) => Failure::unreachable(e),
        // `--direct` with a local door: a wrong pairing, not a lost peer.
        ConnectError::LocalDoor(_) => Failure::bad_input(anyhow!("worker --direct: {e}")),
        other => Failure::unreachable(
            anyhow!(other).context(format!("cannot reach the space at {peer}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_task_killed_with_its_worker_goes_unreported() {
        let (told, heard) = tokio::sync::watch::channel(false);
        assert!(
            !killed_with_its_worker(1, heard.clone()).await,
            "a plain failure is reported"
        );
        assert!(
            !killed_with_its_worker(143, heard.clone()).await,
            "a task killed while its worker was not told to stop is reported"
        );
        told.send(true).unwrap();
        assert!(killed_with_its_worker(143, heard.clone()).await);
        assert!(killed_with_its_worker(137, heard.clone()).await);
        assert!(
            !killed_with_its_worker(0, heard).await,
            "a task that finished counts"
        );
    }
}
