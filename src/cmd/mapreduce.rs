//! `halley mapreduce`: streaming MapReduce with map and reduce commands.
//!
//! The input is read and cut into line-aligned splits; each split is a map
//! task and each partition a reduce task of one master-worker job in the
//! space (embedded unless `--peer`), run by `halley worker` processes that
//! the autonomic manager starts and stops under `--policy` (default: the
//! built-in policy, this machine's cores), as `halley run`'s are: a task is
//! a `halley mr-task` command line ([`task`]), its data in files of a
//! shuffle directory under `--out` ([`drive`] runs the job), or with
//! `--store s3://…` in object storage under a prefix of the job's own
//! (its splits put there first, its `part-<r>` objects fetched into
//! `--out` at the end, then the prefix removed). Writes
//! `<out>/_summary.json` (with each part's SHA-256) and `_SUCCESS` when
//! every task succeeded; stale `part-*` of an earlier job are removed
//! first, and a failed or interrupted job leaves none. Map output lines
//! split into key and value as Hadoop streaming's do (`--separator`,
//! `--key-fields`; a line without the separator is a key with an empty
//! value); a failed task runs again up to `--retries` times. Exit 0 when
//! every task succeeded and the policy's deadline, if any, was met; 1 when
//! a map or reduce command failed or the deadline was missed; 2 for bad
//! input; 3 when the space failed; 130/143 on SIGINT/SIGTERM.

pub(crate) mod drive;
pub mod task;

use std::path::PathBuf;

use anyhow::Context as _;
use halley_autonomic::policy::{Policy, ProviderKind};
use halley_paradigms::mapreduce::Input;
use halley_substrate::Space;

use super::workers::{self, ManagedPool, Reach, SpaceArgs, SpaceJob};
use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};
use crate::store::{Store, StoreArgs};
use drive::Job;

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
    /// Number of reduce partitions (default: the policy's private slots).
    #[arg(long, value_parser = super::counts::reducers)]
    reducers: Option<usize>,
    /// Private workers (one task each at once) in place of the policy's
    /// first `static` class.
    #[arg(long, value_parser = super::counts::workers)]
    workers: Option<u32>,
    /// Output directory: `part-<r>` holds reducer r's output.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    space: SpaceArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// The autonomic policy (TOML): objective, scaling, resource classes.
    #[arg(long)]
    policy: Option<PathBuf>,
    #[command(flatten)]
    keys: task::KeyArgs,
    /// Run a failed map or reduce task again, up to this many more times.
    #[arg(long, default_value_t = 0)]
    retries: u32,
}

pub fn run(args: Args) -> Outcome {
    let input = Input::read(&args.input).map_err(Failure::bad_input)?;
    // The job's own prefix of the object store, if one is named.
    let store = args
        .store
        .open()
        .map_err(Failure::bad_input)?
        .map(|store| store.child(&workers::job_id("mapreduce")));
    let mut policy = match &args.policy {
        Some(path) => Policy::load(path).map_err(Failure::bad_input)?,
        None => Policy::builtin(),
    };
    if let Some(n) = args.workers
        && let Some(class) = policy
            .resources
            .iter_mut()
            .find(|r| r.provider == ProviderKind::Static)
    {
        class.count = Some(n);
        class.slots = 1;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output directory {}", args.out.display()))
        .map_err(Failure::bad_input)?;
    let out = absolute(&args.out)?;
    drive::clear_parts(&out).map_err(Failure::bad_input)?;
    let exe = std::env::current_exe()
        .context("cannot find the halley executable")
        .map_err(Failure::unreachable)?;
    let shuffle = out.join(format!("_shuffle-{}", std::process::id()));
    if store.is_none() {
        std::fs::create_dir_all(&shuffle)
            .with_context(|| format!("cannot create {}", shuffle.display()))
            .map_err(Failure::bad_input)?;
    }
    let reducers = args
        .reducers
        .unwrap_or_else(|| private_slots(&policy))
        .max(1);
    let lines = task::Lines {
        exe: &exe,
        map: &args.map,
        reduce: &args.reduce,
        reducers,
        shuffle: &shuffle,
        out: &out,
        dir: None,
        keys: args.keys,
        store: store.as_ref(),
    };
    let (maps, reduces) = lines
        .of(&input, splits(split_hint(&policy), &input))
        .map_err(|e| match &store {
            Some(_) => Failure::unreachable(e.context("cannot put the splits in the store")),
            None => Failure::bad_input(e),
        })?;
    let job = Job {
        maps,
        reduces,
        objective: policy.objective.clone(),
        shuffle: store.is_none().then_some(shuffle),
        out: out.clone(),
        retries: args.retries,
    };
    let needs = workers::Needs::of(&policy);
    let pool = ManagedPool::new(policy, true);
    workers::with_space(
        "mapreduce",
        &args.space,
        needs,
        Managed {
            job,
            pool,
            out,
            store: store.map(|store| (store, reducers)),
        },
    )
}

/// Bytes of input per map task, at least.
const SPLIT_BYTES: usize = 16 << 20;

/// Splits a job asks for under `policy`, at least: about four a slot the
/// policy may ever have, so that machines added later find work.
pub(super) fn split_hint(policy: &Policy) -> usize {
    let slots: u32 = policy.resources.iter().map(|r| r.limit() * r.slots).sum();
    slots.max(1) as usize * 4
}

/// Splits of `input`: `hint`, and at least one per 16 MB.
pub(super) fn splits(hint: usize, input: &Input) -> usize {
    hint.max(input.len() / SPLIT_BYTES)
}

/// A job waiting for its space.
struct Managed {
    job: Job,
    pool: ManagedPool,
    out: PathBuf,
    /// The job's object store and its number of `part-<r>` objects.
    store: Option<(Store, usize)>,
}

impl SpaceJob for Managed {
    async fn with<S: Space>(self, space: S, reach: Reach) -> Outcome {
        say!("halley: mapreduce: space {}", reach.peer);
        let mut summary =
            drive::drive(space, &reach.peer, self.pool.reaching(&reach), self.job).await?;
        if let Some((store, reducers)) = &self.store {
            let fetched = fetch_parts(store, *reducers, &self.out, summary.error.is_none()).await;
            if let Err(e) = fetched {
                summary.error.get_or_insert(format!("{e:#}"));
            }
            summary.files = drive::finish_parts(&self.out, summary.error.is_none())?;
        }
        let path = self.out.join("_summary.json");
        let text = serde_json::to_string_pretty(&summary).expect("a summary serializes");
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::bad_input)?;
        if let Some(signal) = summary.signal {
            say!(
                "halley: mapreduce interrupted ({}): no part-* kept",
                signal.name()
            );
            return Ok(signal.exit_code());
        }
        if let Some(error) = summary.error {
            return Err(Failure {
                code: NOT_FOUND,
                error: anyhow::anyhow!(error),
            });
        }
        Ok(if summary.deadline_met == Some(false) {
            NOT_FOUND
        } else {
            SUCCESS
        })
    }
}

/// Fetches the `reducers` objects `part-<r>` of `store` into `out` (when
/// the job succeeded: `fetch`), then removes the job's objects.
async fn fetch_parts(
    store: &Store,
    reducers: usize,
    out: &std::path::Path,
    fetch: bool,
) -> anyhow::Result<()> {
    let mut fetched = Ok(());
    if fetch {
        for r in 0..reducers {
            let name = format!("part-{r}");
            let part = store.get(&name).await;
            fetched = part.and_then(|data| {
                let path = out.join(&name);
                std::fs::write(&path, data)
                    .with_context(|| format!("cannot write {}", path.display()))
            });
            if fetched.is_err() {
                break;
            }
        }
    }
    if let Err(e) = store.remove_all().await {
        tracing::warn!(error = %e, "could not remove the job's objects");
    }
    fetched
}

/// The private `static` slots of `policy` (at least 1): the reducers by
/// default, a workflow's MapReduce threads.
pub(super) fn private_slots(policy: &Policy) -> usize {
    let slots: u32 = policy
        .resources
        .iter()
        .filter(|r| r.provider == ProviderKind::Static && r.is_private())
        .map(|r| r.limit() * r.slots)
        .sum();
    slots.max(1) as usize
}

fn absolute(path: &std::path::Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path)
        .with_context(|| format!("cannot resolve {}", path.display()))
        .map_err(Failure::bad_input)
}
