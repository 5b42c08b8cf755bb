//! The master of a master-worker job: puts tasks, collects exactly one
//! result per task, and re-queues tasks whose lease lapsed.
//!
//! ```no_run
//! # async fn demo(space: impl halley_substrate::Space) -> Result<(), halley_paradigms::master::MasterError> {
//! use halley_paradigms::master::Master;
//! let mut master = Master::new(space, "squares");
//! master.submit((0..100u64).map(|i| i.to_le_bytes().to_vec())).await?;
//! while let Some(done) = master.next().await? {
//!     println!("task {} -> {:?}", done.result.id, done.result.payload);
//! }
//! master.stop_workers().await?;
//! # Ok(()) }
//! ```
//!
//! The master talks to the space only: it puts task tuples, takes packed
//! result tuples ([`crate::results`]) in batches, and every check period (default 1 s) scans the job's
//! claims to find lapsed leases (see [`crate::lease`]). It keeps each task's
//! payload until the task is done, to re-queue it.

use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::time::Duration;

use futures::Stream;
use halley_substrate::{Space, SpaceError, Tuple};
use tokio::time::Instant;

use crate::chunks;
use crate::lease::{Claim, Ledger};
use crate::results;
use crate::task::{Heartbeat, TaskResult, abort_template, abort_tuple, stop_template, stop_tuple};

/// Tuples per `out_all` / `take_up_to` call.
const BATCH: usize = 1024;
/// Bytes of payload per `out_all` call, to keep messages small.
const BATCH_BYTES: usize = 1 << 20;
/// Bytes of the first `out_all` of a submission; each next one doubles,
/// up to [`BATCH_BYTES`]: the first tasks are stored (and replicated)
/// and running while the rest is still on its way.
const FIRST_BATCH_BYTES: usize = 64 << 10;
/// Longest gap between two queue scans while nothing runs.
const MAX_QUEUE_SCAN_GAP: Duration = Duration::from_secs(30);
/// How long a finished job's stop notice stays in the space: workers
/// bound to the job read it within their poll period (200 ms by default),
/// and one that connects later than this finds no notice and waits.
pub const STOP_NOTICE_TTL: Duration = Duration::from_secs(3600);

/// Why the master stopped.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error(transparent)]
    Space(#[from] SpaceError),
}

/// A task's one accepted result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub result: TaskResult,
    /// Attempts the master made (1 unless a lease lapsed).
    pub attempts: u64,
}

/// What [`Master::next_before`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Finished(Finished),
    /// Every submitted task has its result.
    Complete,
    /// The deadline came first.
    Idle,
}

/// Counters for progress displays and the autonomic manager.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub submitted: usize,
    /// Neither done nor running.
    pub queued: usize,
    pub done: usize,
    /// Tasks under a live claim at the last check.
    pub running: usize,
    /// Times a task was put back after a lapsed lease.
    pub requeued: u64,
    /// Results dropped because their task already had one.
    pub duplicates: u64,
}

/// The master of job `job` over space `S`.
#[derive(Debug)]
pub struct Master<S> {
    space: S,
    job: String,
    ledger: Ledger,
    payloads: Vec<Option<Vec<u8>>>,
    ready: VecDeque<Finished>,
    check_every: Duration,
    next_check: Instant,
    results_since_check: usize,
    queue_scan_gap: Duration,
    next_queue_scan: Instant,
    requeued: u64,
    duplicates: u64,
    /// Seconds the accepted results ran, and how many: the estimate of a
    /// task's time that sizes chunks ([`chunks::per_chunk`]).
    ran_secs: f64,
    ran: u64,
}

impl<S: Space> Master<S> {
    pub fn new(space: S, job: impl Into<String>) -> Self {
        let check_every = Duration::from_secs(1);
        Master {
            space,
            job: job.into(),
            ledger: Ledger::default(),
            payloads: Vec::new(),
            ready: VecDeque::new(),
            check_every,
            next_check: Instant::now() + check_every,
            results_since_check: 0,
            queue_scan_gap: check_every,
            next_queue_scan: Instant::now() + check_every,
            requeued: 0,
            duplicates: 0,
            ran_secs: 0.0,
            ran: 0,
        }
    }

    /// How often leases are checked; keep it under a third of the workers'
    /// lease so every claim is seen at least once.
    pub fn check_every(mut self, period: Duration) -> Self {
        self.check_every = period;
        self.queue_scan_gap = period;
        self.next_check = Instant::now() + period;
        self.next_queue_scan = self.next_check;
        self
    }

    pub fn job(&self) -> &str {
        &self.job
    }

    pub fn progress(&self) -> Progress {
        Progress {
            submitted: self.ledger.len(),
            queued: self.ledger.len() - self.ledger.done() - self.ledger.running(),
            done: self.ledger.done(),
            running: self.ledger.running(),
            requeued: self.requeued,
            duplicates: self.duplicates,
        }
    }

    /// Puts one task per payload; returns their ids (consecutive, in order).
    pub async fn submit(
        &mut self,
        payloads: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<Range<u64>, MasterError> {
        let payloads: Vec<Vec<u8>> = payloads.into_iter().collect();
        let ids = self.ledger.submit(payloads.len());
        let tasks = ids
            .clone()
            .zip(&payloads)
            .map(|(id, p)| (id, 1, p.as_slice()));
        self.put(tasks).await?;
        self.payloads.extend(payloads.into_iter().map(Some));
        Ok(ids)
    }

    /// The next task's result, or `None` once every submitted task has one.
    pub async fn next(&mut self) -> Result<Option<Finished>, MasterError> {
        loop {
            match self
                .next_before(Instant::now() + Duration::from_secs(3600))
                .await?
            {
                Next::Finished(done) => return Ok(Some(done)),
                Next::Complete => return Ok(None),
                Next::Idle => {}
            }
        }
    }

    /// Like [`Master::next`], but gives up at `deadline` with
    /// [`Next::Idle`], so a caller can do other work (draw progress, scale
    /// workers) between results without cancelling a take.
    pub async fn next_before(&mut self, deadline: Instant) -> Result<Next, MasterError> {
        loop {
            if let Some(done) = self.ready.pop_front() {
                return Ok(Next::Finished(done));
            }
            if self.ledger.is_complete() {
                return Ok(Next::Complete);
            }
            let now = Instant::now();
            if now >= self.next_check {
                self.check().await?;
                continue;
            }
            if now >= deadline {
                return Ok(Next::Idle);
            }
            let wait = self.next_check.min(deadline) - now;
            let template = results::template(Some(&self.job));
            let got = self.space.take_up_to(template, BATCH, Some(wait)).await?;
            self.absorb(got);
        }
    }

    /// The results as a stream, in the order they arrive.
    pub fn results(self) -> impl Stream<Item = Result<Finished, MasterError>> {
        futures::stream::try_unfold(self, |mut master| async move {
            Ok(master.next().await?.map(|done| (done, master)))
        })
    }

    /// Waits for every result; returns them ordered by task id.
    pub async fn collect(&mut self) -> Result<Vec<Finished>, MasterError> {
        let left = self.ledger.len() - self.ledger.done() + self.ready.len();
        let mut all = Vec::with_capacity(left);
        while let Some(done) = self.next().await? {
            all.push(done);
        }
        Ok(by_id(all))
    }

    /// The workers alive in the space (one heartbeat each, the busiest
    /// when a worker has several live), whatever job they serve.
    pub async fn workers(&self) -> Result<Vec<Heartbeat>, MasterError> {
        let mut beats: Vec<Heartbeat> = self
            .space
            .scan(Heartbeat::template(), None)
            .await?
            .into_iter()
            .filter_map(Heartbeat::from_tuple)
            .collect();
        beats.sort_by(|a, b| {
            a.worker
                .cmp(&b.worker)
                .then(b.busy_slots.cmp(&a.busy_slots))
        });
        beats.dedup_by(|a, b| a.worker == b.worker);
        Ok(beats)
    }

    /// Tells the workers bound to this job to finish their batch and exit.
    /// The notice lives [`STOP_NOTICE_TTL`], so a space that outlives many
    /// jobs does not keep one for each.
    pub async fn stop_workers(&self) -> Result<(), MasterError> {
        self.stop_workers_for(STOP_NOTICE_TTL).await
    }

    /// [`Master::stop_workers`] with a notice that lives `ttl`.
    pub async fn stop_workers_for(&self, ttl: Duration) -> Result<(), MasterError> {
        let notice = vec![stop_tuple(&self.job)];
        Ok(self.space.out_all(notice, Some(ttl)).await?)
    }

    /// Tells every worker to drop this job's running tasks now (an
    /// interrupted job); the notice lives `ttl` unless withdrawn.
    pub async fn abort(&self, ttl: Duration) -> Result<(), MasterError> {
        Ok(self
            .space
            .out_all(vec![abort_tuple(&self.job)], Some(ttl))
            .await?)
    }

    /// Takes every tuple of this job out of the space: the tasks not yet
    /// taken, the results (those of tasks without one are returned, as
    /// [`Master::next`] would have), and, once no worker holds a claim of
    /// the job (waiting at most `claims_for`), the claims left and the
    /// stop and abort notices. What a shared space keeps of a job that
    /// ended early: nothing.
    pub async fn withdraw(&mut self, claims_for: Duration) -> Result<Vec<Finished>, MasterError> {
        let until = Instant::now() + claims_for;
        loop {
            let claims = self.space.scan(Claim::template(&self.job), Some(1)).await?;
            if claims.is_empty() || Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let templates = [
            chunks::template(Some(&self.job)),
            Claim::template(&self.job),
            stop_template(&self.job),
            abort_template(Some(&self.job)),
        ];
        for template in templates {
            while !self
                .space
                .take_up_to(template.clone(), BATCH, Some(Duration::ZERO))
                .await?
                .is_empty()
            {}
        }
        loop {
            let got = self
                .space
                .take_up_to(
                    results::template(Some(&self.job)),
                    BATCH,
                    Some(Duration::ZERO),
                )
                .await?;
            if got.is_empty() {
                break;
            }
            self.absorb(got);
        }
        Ok(self.ready.drain(..).collect())
    }

    fn absorb(&mut self, tuples: Vec<Tuple>) {
        for tuple in tuples {
            let Some(results) = results::unpack(tuple) else {
                tracing::warn!(job = %self.job, "dropped a malformed results tuple");
                continue;
            };
            for result in results {
                self.accept(result);
            }
        }
    }

    /// Keeps `result` if it is its task's first.
    fn accept(&mut self, result: TaskResult) {
        match self.ledger.accept(result.id) {
            Some(attempts) => {
                if let Some(slot) = self.payloads.get_mut(result.id as usize) {
                    *slot = None;
                }
                self.ran_secs += result.run_secs().max(0.0);
                self.ran += 1;
                self.results_since_check += 1;
                self.ready.push_back(Finished { result, attempts });
            }
            None => self.duplicates += 1,
        }
    }

    /// Lease check: claims first, then results, then the lapsed leases.
    async fn check(&mut self) -> Result<(), MasterError> {
        let claims = self.space.scan(Claim::template(&self.job), None).await?;
        let claimed: HashSet<(u64, u64)> = claims
            .into_iter()
            .filter_map(Claim::from_tuple)
            .flat_map(|c| c.tasks)
            .collect();
        loop {
            let template = results::template(Some(&self.job));
            let got = self
                .space
                .take_up_to(template, BATCH, Some(Duration::ZERO))
                .await?;
            let full = got.len() == BATCH;
            self.absorb(got);
            if !full {
                break;
            }
        }
        let mut requeue = self.ledger.reconcile_leases(&claimed);
        let now = Instant::now();
        let idle = claimed.is_empty() && self.results_since_check == 0;
        if !idle {
            self.queue_scan_gap = self.check_every;
            self.next_queue_scan = now + self.check_every;
        } else if now >= self.next_queue_scan && !self.ledger.is_complete() {
            let queued: HashSet<(u64, u64)> = self
                .space
                .scan(chunks::template(Some(&self.job)), None)
                .await?
                .into_iter()
                .filter_map(chunks::unpack)
                .flatten()
                .map(|t| (t.id, t.attempt))
                .collect();
            let missing = self.ledger.reconcile_queue(&queued);
            self.queue_scan_gap = if missing.is_empty() && self.ledger.suspects() == 0 {
                (self.queue_scan_gap * 2).min(MAX_QUEUE_SCAN_GAP)
            } else {
                self.check_every
            };
            self.next_queue_scan = now + self.queue_scan_gap;
            requeue.extend(missing);
        }
        if !requeue.is_empty() {
            tracing::info!(job = %self.job, tasks = requeue.len(), "re-queued tasks whose lease lapsed");
            self.requeued += requeue.len() as u64;
            let tasks = requeue.into_iter().filter_map(|(id, attempt)| {
                let payload = self.payloads.get(id as usize)?.as_deref()?;
                Some((id, attempt, payload))
            });
            self.put(tasks).await?;
        }
        self.results_since_check = 0;
        self.next_check = Instant::now() + self.check_every;
        Ok(())
    }

    /// Puts `(id, attempt, payload)` tasks, in chunks sized by the tasks'
    /// time so far ([`chunks`]), in bounded batches of chunks, the first
    /// ones small.
    async fn put(
        &self,
        tasks: impl IntoIterator<Item = (u64, u64, &[u8])>,
    ) -> Result<(), MasterError> {
        let estimate = (self.ran > 0).then(|| self.ran_secs / self.ran as f64);
        let chunks = chunks::pack(&self.job, tasks, chunks::per_chunk(estimate));
        for batch in batches(chunks) {
            self.space.out_all(batch, None).await?;
        }
        Ok(())
    }
}

/// `results` (one a task) ordered by task id: each put in its place when
/// the ids are dense, as a job's are (a sort would move each large result
/// some 18 times for 200,000 of them), sorted when they are sparse.
fn by_id(results: Vec<Finished>) -> Vec<Finished> {
    let id = |d: &Finished| d.result.id;
    let (Some(low), Some(high)) = (results.iter().map(id).min(), results.iter().map(id).max())
    else {
        return results;
    };
    let span = usize::try_from(high - low).unwrap_or(usize::MAX);
    if span >= 2 * results.len() {
        let mut results = results;
        results.sort_unstable_by_key(id);
        return results;
    }
    let count = results.len();
    let mut slots: Vec<Option<Finished>> = Vec::new();
    slots.resize_with(span + 1, || None);
    for done in results {
        let at = (id(&done) - low) as usize;
        slots[at] = Some(done);
    }
    let mut ordered = Vec::with_capacity(count);
    ordered.extend(slots.into_iter().flatten());
    ordered
}

/// `chunks` in the `out_all`s of a submission, in order: at most [`BATCH`]
/// tuples each, the first about [`FIRST_BATCH_BYTES`], each next about
/// twice the last, up to [`BATCH_BYTES`] (a batch ends with the tuple that
/// reaches its bound).
fn batches(chunks: Vec<Tuple>) -> Vec<Vec<Tuple>> {
    let mut all = Vec::new();
    let mut batch = Vec::new();
    let (mut bytes, mut most) = (0, FIRST_BATCH_BYTES);
    for chunk in chunks {
        bytes += chunk.encoded_len_hint();
        batch.push(chunk);
        if batch.len() == BATCH || bytes >= most {
            all.push(std::mem::take(&mut batch));
            bytes = 0;
            most = (2 * most).min(BATCH_BYTES);
        }
    }
    if !batch.is_empty() {
        all.push(batch);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(id: u64) -> Finished {
        let result = TaskResult {
            job: "job".into(),
            id,
            attempt: 1,
            worker: "w".into(),
            resource: "r".into(),
            started_us: 0,
            finished_us: 1,
            payload: id.to_le_bytes().to_vec(),
        };
        Finished {
            result,
            attempts: 1,
        }
    }

    #[test]
    fn results_come_ordered_by_id_dense_or_sparse() {
        let ids = |all: &[Finished]| all.iter().map(|d| d.result.id).collect::<Vec<_>>();
        assert!(by_id(Vec::new()).is_empty());
        // A job's remaining results, shuffled: dense ids from 1,000.
        let dense: Vec<u64> = (0..5_000u64).map(|i| 1_000 + (i * 2_903) % 5_000).collect();
        let all = by_id(dense.iter().copied().map(finished).collect());
        assert_eq!(ids(&all), (1_000..6_000).collect::<Vec<_>>());
        assert!(
            all.iter()
                .all(|d| d.result.payload == d.result.id.to_le_bytes())
        );
        // Stragglers far apart: sorted, and no slot for every id between.
        let sparse = [9_000_000_000u64, 3, 4_000_000, 17];
        let all = by_id(sparse.iter().copied().map(finished).collect());
        assert_eq!(ids(&all), [3, 17, 4_000_000, 9_000_000_000]);
    }

    fn bytes(batch: &[Tuple]) -> usize {
        batch.iter().map(Tuple::encoded_len_hint).sum()
    }

    #[test]
    fn a_submission_starts_with_a_small_batch_and_doubles_up_to_the_bound() {
        let payload = [7u8; 100];
        for per_chunk in [1, 256] {
            let tasks = (0..20_000u64).map(|id| (id, 1, &payload[..]));
            let chunks = chunks::pack("job", tasks, per_chunk);
            let largest = chunks.iter().map(Tuple::encoded_len_hint).max().unwrap();
            let batches = batches(chunks.clone());
            assert_eq!(batches.concat(), chunks, "every chunk, in order");
            // The first tasks go out (and can be taken) before the bulk.
            assert!(bytes(&batches[0]) <= FIRST_BATCH_BYTES + largest);
            assert!(
                8 * bytes(&batches[0]) <= BATCH_BYTES,
                "{}",
                bytes(&batches[0])
            );
            for pair in batches.windows(2) {
                assert!(bytes(&pair[1]) <= 2 * bytes(&pair[0]) + 2 * largest);
            }
            for batch in &batches {
                assert!(batch.len() <= BATCH);
                assert!(bytes(batch) <= BATCH_BYTES + largest);
            }
            // The bound is reached: no more batches than doubling needs.
            let full = (chunks.len() as f64 / BATCH as f64)
                .max(bytes(&chunks) as f64 / BATCH_BYTES as f64);
            assert!(
                batches.len() <= full.ceil() as usize + 6,
                "{}",
                batches.len()
            );
        }
    }
}
