//! `halley mapreduce`: streaming MapReduce with map and reduce commands.
//!
//! The input is read into memory and cut into line-aligned splits; task
//! control goes through the space (embedded unless `--peer`), and worker
//! threads of this process run the commands. Exit 0 when every task
//! succeeded; 1 when a map or reduce command failed or a mapper printed a
//! line that is not `key<TAB>value` (the message names the split and line);
//! 2 for bad input; 3 when the space failed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use halley_autonomic::policy::{Policy, ProviderKind};
use halley_paradigms::mapreduce::{Error, Input, MapReduce, streaming::Streaming};
use halley_substrate::net::PreSharedKey;
use halley_substrate::{EmbeddedSpace, Multiaddr, RemoteSpace, Space};
use tokio::runtime::Runtime;

use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input files, or directories whose regular files are all read.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Map command (`sh -c`): one split on stdin, `key<TAB>value` lines out.
    #[arg(long)]
    map: String,
    /// Reduce command (`sh -c`): its partition's lines on stdin, sorted by key.
    #[arg(long)]
    reduce: String,
    /// Number of reduce partitions (default: one per worker).
    #[arg(long)]
    reducers: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Output directory: `part-<r>` holds reducer r's output.
    #[arg(long)]
    out: PathBuf,
    /// A peer of the space (its multiaddr); without it, an embedded space.
    #[arg(long)]
    peer: Option<String>,
    /// With `--peer`: the private overlay's pre-shared key, as the peer was
    /// given it (`halley node --secret-file`).
    #[arg(long, requires = "peer")]
    secret_file: Option<PathBuf>,
    /// Policy file: the workers are its private `static` slots, this
    /// machine's share (without it: one per core, as the built-in policy).
    #[arg(long)]
    policy: Option<PathBuf>,
}

pub fn run(args: Args) -> Outcome {
    let input = Input::read(&args.input).map_err(Failure::bad_input)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output directory {}", args.out.display()))
        .map_err(Failure::bad_input)?;
    let mut shape = MapReduce::new();
    if let Some(n) = args.workers.or(policy_slots(args.policy.as_deref())?) {
        shape = shape.workers(n);
    }
    if let Some(n) = args.reducers {
        shape = shape.reducers(n);
    }
    let job = Job {
        streaming: Streaming {
            map: args.map,
            reduce: args.reduce,
            out: args.out,
            dir: None,
        },
        input,
        shape,
    };
    let secret = super::secret::load("mapreduce", args.secret_file.as_deref())?;
    with_space(args.peer.as_deref(), secret, job)?
}

/// A streaming job waiting for its space.
struct Job {
    streaming: Streaming,
    input: Input,
    shape: MapReduce,
}

impl UseSpace for Job {
    type Output = Outcome;

    fn with<S: Space>(self, rt: &Runtime, space: S) -> Outcome {
        match self
            .streaming
            .run(&space, rt.handle(), &self.input, &self.shape)
        {
            Ok(()) => Ok(SUCCESS),
            Err(e @ Error::Task { .. }) => Err(Failure {
                code: NOT_FOUND,
                error: e.into(),
            }),
            Err(e) => Err(Failure::unreachable(e)),
        }
    }
}

/// The private `static` slots of the policy at `path` (checked first).
pub(super) fn policy_slots(path: Option<&Path>) -> Result<Option<usize>, Failure> {
    let Some(path) = path else { return Ok(None) };
    let policy = Policy::load(path).map_err(Failure::bad_input)?;
    let slots: u32 = policy
        .resources
        .iter()
        .filter(|r| r.provider == ProviderKind::Static && r.is_private())
        .map(|r| r.limit() * r.slots)
        .sum();
    Ok(Some(slots.max(1) as usize))
}

/// Something to do with a space, whichever kind it is.
pub(super) trait UseSpace {
    type Output;
    fn with<S: Space>(self, rt: &Runtime, space: S) -> Self::Output;
}

/// How long to wait for `--peer` to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `user` with the space of the peer at `peer` (holding the private
/// overlay's key `secret`, if any), or with an embedded space, on a runtime of its
/// own (one thread: the space's I/O is light, the cores are for the tasks).
pub(super) fn with_space<U: UseSpace>(
    peer: Option<&str>,
    secret: Option<PreSharedKey>,
    user: U,
) -> Result<U::Output, Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(Failure::unreachable)?;
    match peer {
        Some(peer) => {
            let addr: Multiaddr = peer
                .parse()
                .with_context(|| format!("--peer {peer:?}: expected a multiaddr"))
                .map_err(Failure::bad_input)?;
            let space = rt
                .block_on(RemoteSpace::connect_with(addr, CONNECT_TIMEOUT, secret))
                .map_err(Failure::unreachable)?;
            Ok(user.with(&rt, space))
        }
        None => {
            let space = rt.block_on(async { EmbeddedSpace::new() });
            Ok(user.with(&rt, space))
        }
    }
}
