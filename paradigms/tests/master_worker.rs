//! Master-worker over the embedded space: every task has exactly one
//! result, with many workers and with a worker that vanishes mid-task.

use std::collections::HashSet;
use std::time::Duration;

use halley_paradigms::chunks;
use halley_paradigms::lease::Claim;
use halley_paradigms::master::{Finished, Master};
use halley_paradigms::task::Heartbeat;
use halley_paradigms::worker::{Report, Worker, WorkerError};
use halley_substrate::Space;
use halley_substrate::embedded::EmbeddedSpace;
use tokio::sync::mpsc;

fn square(payload: &[u8]) -> Vec<u8> {
    let x = u64::from_le_bytes(payload.try_into().expect("8 bytes"));
    (x * x).to_le_bytes().to_vec()
}

/// Waits (at most `secs`) until `holds` is true, asking every 5 ms.
async fn until<F, Fut>(secs: u64, what: &str, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let wait = async {
        while !holds().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(secs), wait)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {secs} s"));
}

/// The report of a worker that was told to stop.
async fn report_of(worker: tokio::task::JoinHandle<Result<Report, WorkerError>>) -> Report {
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// A worker of "job" that takes one batch (one task, or one chunk), starts
/// its first task and vanishes (its future dropped: to the master it
/// died, and its lease lapses); the id of that first task.
async fn vanish_holding_a_batch(space: &EmbeddedSpace) -> u64 {
    let (started, mut has_started) = mpsc::channel(1);
    let doomed = Worker::new(space.clone(), "job")
        .with_id("doomed")
        .max_batch(1)
        .lease(Duration::from_millis(300))
        .run_async(move |task| {
            let started = started.clone();
            async move {
                let _ = started.send(task.id).await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Vec::new()
            }
        });
    let doomed = tokio::spawn(doomed);
    let first = tokio::time::timeout(Duration::from_secs(10), has_started.recv())
        .await
        .unwrap()
        .unwrap();
    doomed.abort();
    first
}

/// Starts the worker "survivor" of "job" and collects every result.
async fn survive(
    space: &EmbeddedSpace,
    master: &mut Master<EmbeddedSpace>,
) -> (
    tokio::task::JoinHandle<Result<Report, WorkerError>>,
    Vec<Finished>,
) {
    let worker = Worker::new(space.clone(), "job").with_id("survivor");
    let survivor = tokio::spawn(worker.run(square));
    let all = tokio::time::timeout(Duration::from_secs(30), master.collect())
        .await
        .unwrap()
        .unwrap();
    (survivor, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_run_each_task_exactly_once() {
    let space = EmbeddedSpace::new();
    let mut master = Master::new(space.clone(), "squares");
    let ids = master
        .submit((0..3000u64).map(|i| i.to_le_bytes().to_vec()))
        .await
        .unwrap();
    assert_eq!(ids, 0..3000);
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let worker = Worker::new(space.clone(), "squares")
                .with_id(format!("w{i}"))
                .slots(2);
            tokio::spawn(worker.run(square))
        })
        .collect();
    let all = tokio::time::timeout(Duration::from_secs(60), master.collect())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.len(), 3000);
    for (i, done) in all.iter().enumerate() {
        assert_eq!(done.result.id, i as u64);
        assert_eq!(done.attempts, 1);
        assert_eq!(done.result.payload, square(&(i as u64).to_le_bytes()));
    }
    master.stop_workers().await.unwrap();
    let mut ran = 0;
    for worker in workers {
        ran += tokio::time::timeout(Duration::from_secs(10), worker)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .tasks;
    }
    assert_eq!(ran, 3000, "no task ran twice");
    assert_eq!(master.progress().duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_workers_task_runs_again_with_one_result() {
    let space = EmbeddedSpace::new();
    let mut master = Master::new(space.clone(), "job").check_every(Duration::from_millis(100));
    master
        .submit((0..5u64).map(|i| i.to_le_bytes().to_vec()))
        .await
        .unwrap();

    // This worker takes one task and vanishes while it runs.
    let lost = vanish_holding_a_batch(&space).await;

    let (survivor, all) = survive(&space, &mut master).await;
    let ids: HashSet<u64> = all.iter().map(|d| d.result.id).collect();
    assert_eq!(all.len(), 5);
    assert_eq!(ids.len(), 5);
    for done in &all {
        assert_eq!(done.result.worker, "survivor");
        let expected = if done.result.id == lost { 2 } else { 1 };
        assert_eq!(done.attempts, expected, "task {}", done.result.id);
        assert_eq!(done.result.attempt, expected);
    }
    assert_eq!(master.progress().requeued, 1);
    master.stop_workers().await.unwrap();
    let report = report_of(survivor).await;
    assert_eq!(report.tasks, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_drains_its_batch_and_returns() {
    let space = EmbeddedSpace::new();
    let mut master = Master::new(space.clone(), "drain");
    master.submit([b"slow".to_vec()]).await.unwrap();
    let (started, mut has_started) = mpsc::channel(1);
    let worker = Worker::new(space.clone(), "drain");
    let stopper = worker.stopper();
    let worker = worker.run_async(move |task| {
        let started = started.clone();
        async move {
            let _ = started.send(()).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            task.payload
        }
    });
    let handle = tokio::spawn(worker);
    has_started.recv().await.unwrap();
    stopper.stop();
    let report = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.tasks, 1, "the running task finished");
    let done = master.next().await.unwrap().expect("its result was put");
    assert_eq!(done.result.payload, b"slow");
}

/// A finished job's stop notice leaves the space once its time is up: a
/// space that outlives many jobs keeps none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_notice_expires() {
    let space = EmbeddedSpace::new();
    let master = Master::new(space.clone(), "brief");
    let notice = halley_paradigms::task::stop_template("brief");
    master
        .stop_workers_for(Duration::from_secs(3))
        .await
        .unwrap();
    let now = space
        .read(notice.clone(), Some(Duration::ZERO))
        .await
        .unwrap();
    assert!(now.is_some(), "the notice is there at first");
    until(20, "the notice expires", || async {
        let read = space.read(notice.clone(), Some(Duration::ZERO)).await;
        read.unwrap().is_none()
    })
    .await;
}

/// Once the master knows its tasks are short it puts them in chunks; a
/// worker that vanishes holding a chunk loses its claim on every task in
/// it, and each of them runs again elsewhere: one result a task, attempt
/// 2 for the chunk's tasks only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_workers_chunk_runs_again_with_one_result_a_task() {
    let space = EmbeddedSpace::new();
    let mut master = Master::new(space.clone(), "job").check_every(Duration::from_millis(100));
    // A first batch teaches the master how long a task takes.
    master
        .submit((0..300u64).map(|i| i.to_le_bytes().to_vec()))
        .await
        .unwrap();
    let learner = Worker::new(space.clone(), "job").with_id("learner");
    let stop_learner = learner.stopper();
    let learner = tokio::spawn(learner.run(square));
    let first = tokio::time::timeout(Duration::from_secs(30), master.collect())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.len(), 300);
    stop_learner.stop();
    tokio::time::timeout(Duration::from_secs(10), learner)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    master
        .submit((300..1300u64).map(|i| i.to_le_bytes().to_vec()))
        .await
        .unwrap();
    let chunks = space
        .scan(halley_paradigms::chunks::template(Some("job")), None)
        .await
        .unwrap();
    assert!(
        chunks.len() < 100,
        "1,000 short tasks in {} tuples",
        chunks.len()
    );

    // This worker takes one chunk and vanishes while it runs.
    vanish_holding_a_batch(&space).await;

    let (survivor, all) = survive(&space, &mut master).await;
    let ids: HashSet<u64> = all.iter().map(|d| d.result.id).collect();
    assert_eq!((all.len(), ids.len()), (1000, 1000));
    let again: Vec<u64> = all
        .iter()
        .filter(|d| d.attempts == 2)
        .map(|d| d.result.id)
        .collect();
    let requeued = master.progress().requeued;
    assert_eq!(again.len() as u64, requeued, "{again:?}");
    assert!(requeued > 1, "the doomed worker held a chunk, not one task");
    for done in &all {
        assert_eq!(done.result.worker, "survivor");
        assert_eq!(done.result.attempt, done.attempts);
        assert_eq!(done.result.payload, square(&done.result.id.to_le_bytes()));
    }
    assert_eq!(master.progress().duplicates, 0);
    master.stop_workers().await.unwrap();
    report_of(survivor).await;
}

/// The claims of "job" in the space, as (task id, attempt).
async fn claimed(space: &EmbeddedSpace) -> Vec<(u64, u64)> {
    let tuples = space.scan(Claim::template("job"), None).await.unwrap();
    tuples
        .into_iter()
        .filter_map(Claim::from_tuple)
        .flat_map(|c| c.tasks)
        .collect()
}

/// Waits (bounded) until `claimed` says `wanted`.
async fn claims_become(space: &EmbeddedSpace, wanted: &[(u64, u64)]) {
    let what = format!("claims {wanted:?}");
    until(10, &what, || async { claimed(space).await == wanted }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_is_claimed_until_its_result_is_in() {
    let space = EmbeddedSpace::new();
    let mut master = Master::new(space.clone(), "job");
    let (started, mut has_started) = mpsc::channel(1);
    let (finish, may_finish) = tokio::sync::watch::channel(false);
    // A long lease: the claim seen is the one put as the task starts, not
    // a renewal (every third of the lease).
    let worker = Worker::new(space.clone(), "job")
        .lease(Duration::from_secs(60))
        .run_async(move |task| {
            let started = started.clone();
            let mut may_finish = may_finish.clone();
            async move {
                let _ = started.send(task.id).await;
                let _ = may_finish.wait_for(|&go| go).await;
                Vec::new()
            }
        });
    let worker = tokio::spawn(worker);
    // Its first renewal (a heartbeat) is done before the task exists.
    until(10, "a first heartbeat", || async {
        !space
            .scan(Heartbeat::template(), None)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    master.submit([7u64.to_le_bytes().to_vec()]).await.unwrap();
    let id = tokio::time::timeout(Duration::from_secs(10), has_started.recv())
        .await
        .unwrap()
        .unwrap();
    // Running, its lease is in the space (the master tells it from a lost one).
    claims_become(&space, &[(id, 1)]).await;
    finish.send(true).unwrap();
    let all = tokio::time::timeout(Duration::from_secs(10), master.collect())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.len(), 1);
    // Its result in, the claim is taken back.
    claims_become(&space, &[]).await;
    master.stop_workers().await.unwrap();
    let report = report_of(worker).await;
    assert_eq!(report.tasks, 1);
}

/// Tasks of "job" queued in the space.
async fn queued(space: &EmbeddedSpace) -> usize {
    let chunks = space
        .scan(chunks::template(Some("job")), None)
        .await
        .unwrap();
    chunks
        .into_iter()
        .filter_map(chunks::unpack)
        .map(|t| t.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_puts_back_chunks_past_the_tasks_it_wanted() {
    let space = EmbeddedSpace::new();
    let mut master = Master::new(space.clone(), "job");
    // One task first: it travels alone, and the lane learns chunks of one.
    master.submit([0u64.to_le_bytes().to_vec()]).await.unwrap();
    let (started, mut has_started) = mpsc::channel(1);
    let (finish, may_finish) = tokio::sync::watch::channel(false);
    let worker = Worker::new(space.clone(), "job")
        .slots(1)
        .max_batch(64)
        .run_async(move |task| {
            let started = started.clone();
            let mut may_finish = may_finish.clone();
            async move {
                if task.id == 1 {
                    let _ = started.send(task.id).await;
                    let _ = may_finish.wait_for(|&go| go).await;
                }
                task.payload
            }
        });
    let worker = tokio::spawn(worker);
    let first = tokio::time::timeout(Duration::from_secs(10), master.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.unwrap().result.id, 0);
    // The master has measured a short task: these go in chunks of many,
    // and the lane, asking as many chunks as it wants tasks (64), takes
    // them all at once.
    master
        .submit((1..=2048u64).map(|i| i.to_le_bytes().to_vec()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), has_started.recv())
        .await
        .unwrap()
        .unwrap();
    // While task 1 runs, the lane holds at most its batch and the one it
    // took ahead (a chunk each); the rest is back in the space.
    until(10, "the chunks past the tasks wanted back", || async {
        queued(&space).await >= 2048 - 2 * chunks::MAX_CHUNK
    })
    .await;
    finish.send(true).unwrap();
    let all = tokio::time::timeout(Duration::from_secs(30), master.collect())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.len(), 2048);
    let ids: HashSet<u64> = all.iter().map(|d| d.result.id).collect();
    assert_eq!(ids, (1..=2048).collect());
    assert!(all.iter().all(|d| d.attempts == 1));
    master.stop_workers().await.unwrap();
    let report = report_of(worker).await;
    assert_eq!(report.tasks, 2049);
}
