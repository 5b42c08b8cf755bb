//! A worker of master-worker jobs: takes tasks in batches, runs them, puts
//! their results, and holds a lease on what it runs.
//!
//! ```no_run
//! # async fn demo(space: impl halley_substrate::Space) -> Result<(), halley_paradigms::worker::WorkerError> {
//! use halley_paradigms::worker::Worker;
//! Worker::new(space, "squares")
//!     .run(|payload| {
//!         let x = u64::from_le_bytes(payload.try_into().unwrap_or_default());
//!         (x * x).to_le_bytes().to_vec()
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Inside, `slots` lanes run at once. Each lane takes up to `n` tasks (as
//! many chunks as hold about `n`, by the size of the chunks it took last:
//! see [`crate::chunks`]), puts one claim for the batch (see [`crate::lease`]), runs the tasks one
//! after the other, and puts all their results, then takes its claim back.
//! A lane's turn is one round trip ([`Space::steps`]): the running batch's
//! claim out, the previous batch's results out, its claim taken back and
//! the next batch taken, in this order, in one request. `n` adapts:
//! it aims at batches of about 20 ms of work (from the measured task time),
//! between 1 and `max_batch` (1024), so short tasks travel in bulk and long
//! ones one by one. While a batch runs, the lane claims it, reports the
//! previous one and, if tasks are short, already takes the next: round trips
//! hide behind the work. A renewal loop re-puts the claims of taken batches, and a
//! [`Heartbeat`] of the worker, every third of the lease; a stop loop polls
//! for `("stop", <worker id>)` (taken) and `("stop", <job>)` (read). On
//! either, or on [`Stopper::stop`], lanes finish what they took and the
//! worker returns. An `("abort", <job>)` notice (an interrupted job) drops
//! the job's running batches at once (their futures are dropped: a shell
//! task's process group is killed) and takes their claims back; a worker
//! bound to that job then returns. When the space is lost (a renewal or
//! a stop poll fails), the running batches are dropped at once and `run`
//! returns the error: their claims can no longer be renewed, so the master
//! runs them again elsewhere. Dropping the future returned by `run`
//! aborts everything at once: to the master that worker died, and its
//! leases lapse.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halley_substrate::{MAX_STEPS, Space, SpaceError, Step, Template, Tuple};
use tokio::task::JoinSet;

use crate::chunks;
use crate::lease::Claim;
use crate::results::{self, Outcome};
use crate::task::{Heartbeat, Task, abort_template, aborted_job, now_us, stop_template};

/// Work a batch should hold, when the task time is known.
const BATCH_TIME: Duration = Duration::from_millis(20);

/// Why a worker stopped other than by being told to.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Space(#[from] SpaceError),
    #[error("the task function panicked: {0}")]
    Panicked(String),
}

/// What a worker did before it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub tasks: u64,
    pub batches: u64,
}

/// A worker over space `S`, configured by its builder methods.
#[derive(Clone, Debug)]
pub struct Worker<S> {
    space: S,
    job: Option<String>,
    id: String,
    resource: String,
    slots: usize,
    lease: Duration,
    max_batch: usize,
    poll: Duration,
    stop: Arc<AtomicBool>,
}

/// Tells a running worker to finish its batches and return (a drain).
#[derive(Clone, Debug)]
pub struct Stopper(Arc<AtomicBool>);

impl Stopper {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl<S: Space> Worker<S> {
    /// A worker for the tasks of `job`.
    pub fn new(space: S, job: impl Into<String>) -> Self {
        Worker {
            job: Some(job.into()),
            ..Worker::any_job(space)
        }
    }

    /// A worker for the tasks of every job in the space.
    pub fn any_job(space: S) -> Self {
        Worker {
            space,
            job: None,
            id: default_id(),
            resource: "local".into(),
            slots: 1,
            lease: Duration::from_secs(5),
            max_batch: 1024,
            poll: Duration::from_millis(200),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// This worker's id, in results and claims (default: `<host>-<pid>-<n>`).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The resource class reported with each result (default `local`).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = resource.into();
        self
    }

    /// Tasks run at once (default 1).
    pub fn slots(mut self, slots: usize) -> Self {
        self.slots = slots.max(1);
        self
    }

    /// How long a claim lives without renewal (default 5 s).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The most tasks one lane takes at once (default 1024); a chunk
    /// ([`crate::chunks`]) counts as one, so tasks the master packed (each
    /// under [`crate::chunks::CHUNK_TIME`] by its estimate) may come more
    /// to a batch.
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = max.max(1);
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A handle that stops this worker (as a stop tuple would) from elsewhere.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Runs `f` on each task's payload (on a blocking thread, a batch at a
    /// time) until told to stop.
    pub async fn run<F>(self, f: F) -> Result<Report, WorkerError>
    where
        F: Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.drive(move |tasks: Vec<Task>| {
            let f = f.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    tasks
                        .into_iter()
                        .map(|task| {
                            let started = now_us();
                            let out = f(&task.payload);
                            (task, started, now_us(), out)
                        })
                        .collect()
                })
                .await
                .map_err(|e| WorkerError::Panicked(e.to_string()))
            }
        })
        .await
    }

    /// Runs the async `f` on each task until told to stop; the `slots`
    /// lanes run their tasks concurrently.
    pub async fn run_async<F, Fut>(self, f: F) -> Result<Report, WorkerError>
    where
        F: Fn(Task) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<u8>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.drive(move |tasks: Vec<Task>| {
            let f = f.clone();
            async move {
                let mut done = Vec::with_capacity(tasks.len());
                for task in tasks {
                    let started = now_us();
                    let out = f(task.clone()).await;
                    done.push((task, started, now_us(), out));
                }
                Ok(done)
            }
        })
        .await
    }

    async fn drive<E, Fut>(self, execute: E) -> Result<Report, WorkerError>
    where
        E: Fn(Vec<Task>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Ran>, WorkerError>> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            stop: self.stop.clone(),
            leases: Mutex::new(HashMap::new()),
            aborted: Mutex::new(HashSet::new()),
            batch: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        });
        let me = Arc::new(self);
        let mut background = JoinSet::new();
        background.spawn(me.clone().renew(shared.clone()));
        background.spawn(me.clone().watch_stop(shared.clone()));
        let mut lanes = JoinSet::new();
        for _ in 0..me.slots {
            lanes.spawn(me.clone().lane(shared.clone(), execute.clone()));
        }
        let mut report = Report::default();
        let mut failure = None;
        loop {
            tokio::select! {
                Some(joined) = lanes.join_next() => match joined {
                    Ok(Ok(lane)) => {
                        report.tasks += lane.tasks;
                        report.batches += lane.batches;
                    }
                    Ok(Err(e)) => {
                        shared.stop.store(true, Ordering::Relaxed);
                        failure.get_or_insert(e);
                    }
                    Err(e) => {
                        shared.stop.store(true, Ordering::Relaxed);
                        failure.get_or_insert(WorkerError::Panicked(e.to_string()));
                    }
                },
                Some(Ok(Err(e))) = background.join_next() => {
                    // The space is gone (a renewal or the stop watch
                    // failed): the claims lapse and the master runs these
                    // tasks again elsewhere, so running them on would only
                    // be paid for. Dropped at once (a shell task's process
                    // group is killed).
                    shared.stop.store(true, Ordering::Relaxed);
                    lanes.abort_all();
                    failure.get_or_insert(e);
                },
                else => break,
            }
            if lanes.is_empty() {
                break;
            }
        }
        failure.map_or(Ok(report), Err)
    }

    /// Takes, claims, runs and reports batches until stopped. Round trips
    /// hide behind the running batch: while it runs, the lane puts the
    /// previous batch's results (then takes its claim back) and, when tasks
    /// are short (batches of more than one), takes and claims the next batch.
    async fn lane<E, Fut>(
        self: Arc<Self>,
        shared: Arc<Shared>,
        execute: E,
    ) -> Result<Report, WorkerError>
    where
        E: Fn(Vec<Task>) -> Fut,
        Fut: Future<Output = Result<Vec<Ran>, WorkerError>>,
    {
        let mut report = Report::default();
        let mut per_task: Option<f64> = None;
        // Tasks a chunk held in the last fetch ([`crate::chunks`]).
        let mut per_chunk = 1.0f64;
        let mut ran_batch: Option<RanBatch> = None;
        let mut next: Option<Fetched> = None;
        let mut giving_back = GiveBack::default();
        loop {
            let stopping = shared.stop.load(Ordering::Relaxed);
            // Tasks wanted, and the chunks that hold them, at most `max_batch`.
            let n = per_task.map_or(1, |secs| {
                ((BATCH_TIME.as_secs_f64() / secs.max(1e-9)) as usize).clamp(1, self.max_batch)
            });
            let chunks = ((n as f64 / per_chunk).ceil() as usize).clamp(1, n);
            let fetch = |wait| Fetch {
                chunks,
                tasks: n,
                wait,
            };
            let current = match next.take() {
                Some(fetched) => fetched,
                None => {
                    let fetch = (!stopping).then(|| fetch(self.poll));
                    let ran = ran_batch.take();
                    match self
                        .turn(&shared, &[], ran, fetch, &mut giving_back)
                        .await?
                    {
                        Some(fetched) => fetched,
                        None if stopping => {
                            giving_back.wait().await?;
                            return Ok(report);
                        }
                        None => continue,
                    }
                }
            };
            let prefetch = !stopping && n > 1;
            let count = current.tasks.len();
            per_chunk = count as f64 / current.chunks.max(1) as f64;
            let claims = current.claims;
            let began = Instant::now();
            let jobs: HashSet<String> = current.tasks.iter().map(|t| t.job.clone()).collect();
            shared.busy.fetch_add(1, Ordering::Relaxed);
            let run_or_abort = async {
                tokio::select! {
                    ran = execute(current.tasks) => ran.map(Some),
                    () = shared.aborted_any(&jobs) => Ok(None),
                }
            };
            let ran = tokio::try_join!(run_or_abort, async {
                let fetch = prefetch.then(|| fetch(Duration::ZERO));
                let ran = ran_batch.take();
                self.turn(&shared, &claims, ran, fetch, &mut giving_back)
                    .await
            });
            shared.busy.fetch_sub(1, Ordering::Relaxed);
            let (ran, fetched) = ran?;
            next = fetched;
            let Some(ran) = ran else {
                tracing::info!(worker = %self.id, "the job was aborted: its running tasks dropped");
                self.withdraw(&shared, &claims).await?;
                continue;
            };
            let secs = began.elapsed().as_secs_f64() / count as f64;
            per_task = Some(per_task.map_or(secs, |old| 0.5 * old + 0.5 * secs));
            report.tasks += count as u64;
            report.batches += 1;
            ran_batch = Some(RanBatch { ran, claims });
        }
    }

    /// One turn of a lane, in one round trip where it can: puts `claims`
    /// (the running batch's), puts the results of `ran` (if any) and takes
    /// its claims back, then, if asked to `fetch`, takes chunks of tasks.
    /// What it took is claimed by the next turn, the one that runs beside
    /// it; chunks past the tasks wanted start `giving_back`. `None` if no
    /// task came.
    async fn turn(
        &self,
        shared: &Shared,
        claims: &[(u64, Tuple)],
        ran: Option<RanBatch>,
        fetch: Option<Fetch>,
        giving_back: &mut GiveBack,
    ) -> Result<Option<Fetched>, WorkerError> {
        let mut steps = Vec::new();
        if !claims.is_empty() {
            steps.push(Step::Out {
                tuples: claims.iter().map(|(_, t)| t.clone()).collect(),
                ttl: Some(self.lease),
            });
        }
        if let Some(RanBatch { ran, claims }) = ran {
            steps.push(Step::Out {
                tuples: self.results(&ran),
                ttl: None,
            });
            // The results come first: a claim gone with no result would
            // mean this worker died.
            forget(shared, &claims);
            steps.extend(claims.iter().map(|(_, claim)| Step::Take {
                template: Template::exact(claim),
                max: 8,
                timeout: Some(Duration::ZERO),
            }));
        }
        if let Some(fetch) = fetch {
            steps.push(Step::Take {
                template: chunks::template(self.job.as_deref()),
                max: u32::try_from(fetch.chunks).unwrap_or(u32::MAX),
                timeout: Some(fetch.wait),
            });
        }
        // Only the last step may wait, and one request holds MAX_STEPS.
        let mut taken = Vec::new();
        while !steps.is_empty() {
            let rest = steps.split_off(steps.len().min(MAX_STEPS));
            taken = self
                .space
                .steps(std::mem::replace(&mut steps, rest))
                .await?;
        }
        let Some(fetch) = fetch else {
            return Ok(None);
        };
        // Chunks larger than the last ones held more than wanted: the
        // chunks past the tasks wanted go back, for other lanes and workers.
        let (mut tasks, mut chunks, mut surplus) = (Vec::new(), 0, Vec::new());
        for tuple in taken.pop().unwrap_or_default() {
            if tasks.len() >= fetch.tasks {
                surplus.push(tuple);
            } else if let Some(held) = chunks::unpack(tuple) {
                tasks.extend(held);
                chunks += 1;
            }
        }
        giving_back.start(&self.space, surplus).await?;
        if tasks.is_empty() {
            return Ok(None);
        }
        let claims: Vec<(u64, Tuple)> = self
            .claims(shared, &tasks)
            .iter()
            .map(|c| (c.batch, c.to_tuple()))
            .collect();
        // Renewed from now on; first put by the turn beside its run.
        shared
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(claims.iter().cloned());
        Ok(Some(Fetched {
            tasks,
            chunks,
            claims,
        }))
    }

    /// The packed result tuples of the tasks that ran.
    fn results(&self, ran: &[Ran]) -> Vec<Tuple> {
        let outcomes = ran
            .iter()
            .map(|(task, started, finished, payload)| Outcome {
                job: &task.job,
                id: task.id,
                attempt: task.attempt,
                started_us: *started,
                finished_us: *finished,
                payload,
            });
        results::pack(&self.id, &self.resource, outcomes)
    }

    /// Stops renewing `claims` and takes them back.
    async fn withdraw(&self, shared: &Shared, claims: &[(u64, Tuple)]) -> Result<(), WorkerError> {
        forget(shared, claims);
        for (_, claim) in claims {
            self.space
                .take_up_to(Template::exact(claim), 8, Some(Duration::ZERO))
                .await?;
        }
        Ok(())
    }

    /// One claim per job among `tasks`.
    fn claims(&self, shared: &Shared, tasks: &[Task]) -> Vec<Claim> {
        let mut by_job: Vec<Claim> = Vec::new();
        for task in tasks {
            match by_job.iter_mut().find(|c| c.job == task.job) {
                Some(claim) => claim.tasks.push((task.id, task.attempt)),
                None => by_job.push(Claim {
                    job: task.job.clone(),
                    worker: self.id.clone(),
                    batch: shared.batch.fetch_add(1, Ordering::Relaxed),
                    tasks: vec![(task.id, task.attempt)],
                }),
            }
        }
        by_job
    }

    /// Re-puts the claims of running batches and a heartbeat every third of
    /// the lease.
    async fn renew(self: Arc<Self>, shared: Arc<Shared>) -> Result<(), WorkerError> {
        let mut tick = tokio::time::interval(self.lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut tuples: Vec<Tuple> = shared
                .leases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            let beat = Heartbeat {
                worker: self.id.clone(),
                resource: self.resource.clone(),
                busy_slots: shared.busy.load(Ordering::Relaxed),
            };
            tuples.push(beat.to_tuple());
            self.space.out_all(tuples, Some(self.lease)).await?;
        }
    }

    /// Polls for a stop tuple addressed to this worker or its job, and for
    /// abort notices (of its job, or of any job for a worker of every job).
    async fn watch_stop(self: Arc<Self>, shared: Arc<Shared>) -> Result<(), WorkerError> {
        loop {
            let mine = self
                .space
                .take(stop_template(&self.id), Some(Duration::ZERO))
                .await?;
            let job = match &self.job {
                Some(job) => {
                    self.space
                        .read(stop_template(job), Some(Duration::ZERO))
                        .await?
                }
                None => None,
            };
            // A worker of one job reads its one notice (all an isolated
            // worker's capability allows); a worker of every job scans.
            let aborts = match &self.job {
                Some(job) => self
                    .space
                    .read(abort_template(Some(job)), Some(Duration::ZERO))
                    .await?
                    .into_iter()
                    .collect(),
                None => self.space.scan(abort_template(None), Some(64)).await?,
            };
            let mut bound_job_aborted = false;
            if !aborts.is_empty() {
                let mut aborted = shared.aborted.lock().unwrap_or_else(|e| e.into_inner());
                for job in aborts.into_iter().filter_map(aborted_job) {
                    bound_job_aborted |= self.job.as_ref() == Some(&job);
                    aborted.insert(job);
                }
            }
            // Told to stop, it drains, still watching for an abort.
            if mine.is_some() || job.is_some() || bound_job_aborted {
                shared.stop.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// A task that ran: the task, start and finish (µs since the epoch), output.
type Ran = (Task, i64, i64, Vec<u8>);

/// What a turn takes: up to `chunks` chunks holding about `tasks` tasks,
/// waiting up to `wait` for the first.
#[derive(Debug, Clone, Copy)]
struct Fetch {
    chunks: usize,
    tasks: usize,
    wait: Duration,
}

/// A batch taken, not yet run nor claimed.
#[derive(Debug)]
struct Fetched {
    tasks: Vec<Task>,
    /// The chunks they came in.
    chunks: usize,
    /// Its claims, by batch number, put as it starts running.
    claims: Vec<(u64, Tuple)>,
}

/// A lane's chunks on their way back to the space, beside its work (a
/// lane that took them ahead may not run them for a while, and waiting
/// for the put would delay its own batch): one put in flight at a time,
/// waited for before the next and before the lane ends.
#[derive(Debug, Default)]
struct GiveBack(Option<tokio::task::JoinHandle<Result<(), SpaceError>>>);

impl GiveBack {
    /// Puts `chunks` back (after the put in flight, if any).
    async fn start<S: Space>(&mut self, space: &S, chunks: Vec<Tuple>) -> Result<(), WorkerError> {
        if chunks.is_empty() {
            return Ok(());
        }
        self.wait().await?;
        let space = space.clone();
        self.0 = Some(tokio::spawn(
            async move { space.out_all(chunks, None).await },
        ));
        Ok(())
    }

    /// Waits for the put in flight.
    async fn wait(&mut self) -> Result<(), WorkerError> {
        match self.0.take() {
            Some(put) => Ok(put
                .await
                .map_err(|e| WorkerError::Panicked(e.to_string()))??),
            None => Ok(()),
        }
    }
}

/// A batch that ran, waiting for its results to be put.
#[derive(Debug)]
struct RanBatch {
    ran: Vec<Ran>,
    /// Its claims, by batch number.
    claims: Vec<(u64, Tuple)>,
}

/// State the lanes and the renewal loop share.
#[derive(Debug)]
struct Shared {
    stop: Arc<AtomicBool>,
    /// Claim tuples of running batches, by batch number.
    leases: Mutex<HashMap<u64, Tuple>>,
    /// Jobs whose abort notice was seen.
    aborted: Mutex<HashSet<String>>,
    batch: AtomicU64,
    /// Lanes running a batch.
    busy: AtomicU64,
}

impl Shared {
    /// Returns once one of `jobs` is aborted (checked every 50 ms).
    async fn aborted_any(&self, jobs: &HashSet<String>) {
        loop {
            {
                let aborted = self.aborted.lock().unwrap_or_else(|e| e.into_inner());
                if jobs.iter().any(|j| aborted.contains(j)) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Stops renewing `claims`.
fn forget(shared: &Shared, claims: &[(u64, Tuple)]) {
    let mut leases = shared.leases.lock().unwrap_or_else(|e| e.into_inner());
    for (key, _) in claims {
        leases.remove(key);
    }
}

/// `<host>-<pid>-<n>`: unique among the workers of a space in practice.
fn default_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
