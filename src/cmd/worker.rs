//! `halley worker`: a worker process that reaches a space through `--peer`
//! and runs shell-command tasks with `sh -c`, up to `--slots` at once.
//!
//! Without `--job` it takes the tasks of every job in the space. Each result
//! carries the exit code, timings, this worker's id and `--resource`, and
//! the first `--max-output` bytes of stdout and stderr (see
//! `halley_paradigms::bag`). It exits 0 when told to stop (a
//! `("stop", <worker id>)` tuple, or `("stop", <job>)` with `--job`) or on
//! SIGTERM/SIGINT (after finishing what it runs: a drain), and 3
//! when the space goes away or cannot be reached.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;

use halley_paradigms::bag::{DEFAULT_OUTPUT_CAP, run_command};
use halley_paradigms::worker::{Worker, WorkerError};
use halley_substrate::Multiaddr;
use halley_substrate::Space;
use halley_substrate::client::{ConnectError, RemoteSpace};

use crate::exit::{Failure, Outcome, SUCCESS};

/// How long to wait for the peer to answer when connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A peer of the space (its multiaddr, as `halley node` prints it).
    #[arg(long, env = "HALLEY_JOIN")]
    pub peer: String,
    /// Tasks run at once.
    #[arg(long, default_value_t = 1)]
    pub slots: usize,
    /// The resource class reported with each result.
    #[arg(long, env = "HALLEY_RESOURCE", default_value = "local")]
    pub resource: String,
    /// File holding the cluster secret / worker token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The private overlay's pre-shared key, as the peer was given it
    /// (`halley node --secret-file`).
    #[arg(long, env = "HALLEY_SECRET_FILE")]
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
    /// default, 1, balances best; raise it for floods of tiny commands.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Bytes of stdout and of stderr kept in each result.
    #[arg(long, default_value_t = DEFAULT_OUTPUT_CAP)]
    pub max_output: usize,
}

pub fn run(args: Args) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::unreachable)?;
    runtime.block_on(async move {
        let space = connect(
            &args.peer,
            args.token_file.as_deref(),
            args.secret_file.as_deref(),
        )
        .await?;
        work(space, args).await
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
        .slots(args.slots)
        .resource(args.resource)
        .lease(args.lease)
        .max_batch(args.batch);
    let id = worker.id().to_owned();
    let stopper = worker.stopper();
    tokio::spawn(async move {
        drain_on_signal().await;
        stopper.stop();
    });
    tracing::info!(worker = %id, peer = %args.peer, "worker started");
    let cap = args.max_output;
    let report = worker
        .run_async(move |task| async move {
            let command = String::from_utf8_lossy(&task.payload).into_owned();
            run_command(&command, cap).await.encode()
        })
        .await;
    match report {
        Ok(report) => {
            tracing::info!(worker = %id, tasks = report.tasks, "worker stopped");
            Ok(SUCCESS)
        }
        Err(WorkerError::Space(e)) => Err(Failure::unreachable(
            anyhow::Error::new(e)
                .context(format!("worker {id}: the space at {} went away", args.peer)),
        )),
        Err(e) => Err(Failure::unreachable(
            anyhow::Error::new(e).context("worker failed"),
        )),
    }
}

/// Returns on SIGTERM or SIGINT: the worker then drains (finishes its
/// batches, takes no more) and exits 0.
async fn drain_on_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
    tracing::info!("signal received: draining");
}

/// Connects to the space at `peer`, holding the key in `secret_file` if
/// given; exit 2 for a malformed address or an unreadable token or key
/// file, 3 when the peer cannot be reached.
pub(crate) async fn connect(
    peer: &str,
    token_file: Option<&Path>,
    secret_file: Option<&Path>,
) -> Result<RemoteSpace, Failure> {
    let secret = super::secret::load("worker", secret_file)?;
    if let Some(file) = token_file {
        std::fs::read(file).map_err(|e| {
            Failure::bad_input(anyhow!(
                "{}: cannot read the token file: {e}",
                file.display()
            ))
        })?;
        tracing::warn!(file = %file.display(), "the space does not check worker tokens yet; connecting without one");
    }
    let addr: Multiaddr = peer
        .parse()
        .map_err(|e| Failure::bad_input(anyhow!("--peer {peer}: not a multiaddr: {e}")))?;
    RemoteSpace::connect_with(addr, CONNECT_TIMEOUT, secret)
        .await
        .map_err(|e| match e {
            // Says "cannot reach <addr>: …" itself.
            ConnectError::Reach(_) => Failure::unreachable(e),
            other => Failure::unreachable(
                anyhow!(other).context(format!("cannot reach the space at {peer}")),
            ),
        })
}
