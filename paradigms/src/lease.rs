//! Task leases: how a master tells a running task from a lost one.
//!
//! A worker that takes a batch of tasks puts one *claim* tuple for it,
//! `("claim", job, worker, batch, tasks)`, with a time-to-live (the lease,
//! default 5 s), and re-puts it every third of the lease while any task of
//! the batch runs: the claim is the heartbeat. Once the batch's results are
//! in the space the worker takes its claim back. A worker that dies stops
//! renewing, and its claim expires.
//!
//! The master keeps a [`Ledger`] (pure state, no I/O): each task is queued,
//! running (a live claim for its current attempt was seen) or done (its
//! first result arrived; later results for the same task id are dropped, so
//! every task has exactly one result). Every check period the master scans
//! the job's claims, *then* drains the results, then asks the ledger which
//! running tasks lost their claim: a worker puts its results before taking
//! its claim back, so a claim gone with no result means the worker died,
//! and the task is queued again with attempt + 1.
//!
//! One window is left: a worker that dies between taking a batch and
//! putting its claim (a lane that takes the next batch while one runs
//! claims it as it starts running it, in the same request as its other
//! puts: one round trip a turn, not two). When nothing is running and no result came for a
//! check period, the master scans the queue; a queued task absent from two
//! such scans in a row is re-queued too ([`Ledger::reconcile_queue`]).

use std::collections::HashSet;
use std::ops::Range;

use halley_substrate::{Field, Kind, Template, Tuple, Value};

use crate::records::{Deltas, Reader, Writer};
use crate::task::{CLAIM, bytes, int, job_field, string, uint};

/// Tasks a claim read from the space may name at most: a claim is one
/// batch, and its runs must not make a reader allocate without bound.
pub const MAX_CLAIMED: usize = 1 << 20;

/// One worker's lease on a batch of tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub job: String,
    pub worker: String,
    /// Numbers the worker's batches, so two claims of one worker differ.
    pub batch: u64,
    /// `(task_id, attempt)` of every task of the batch.
    pub tasks: Vec<(u64, u64)>,
}

impl Claim {
    pub fn to_tuple(&self) -> Tuple {
        let mut packed = Vec::new();
        let mut writer = Writer(&mut packed);
        let mut starts = Deltas::default();
        let mut rest = self.tasks.as_slice();
        while let Some(&(start, attempt)) = rest.first() {
            let run = rest
                .iter()
                .zip(0u64..)
                .take_while(|&(&task, k)| task == (start.wrapping_add(k), attempt))
                .count();
            starts.put(&mut writer, start);
            writer.varint(run as u64).varint(attempt);
            rest = &rest[run..];
        }
        Tuple::new(vec![
            CLAIM.into(),
            self.job.as_str().into(),
            self.worker.as_str().into(),
            int(self.batch),
            Value::Bytes(packed),
        ])
    }

    pub fn from_tuple(tuple: Tuple) -> Option<Claim> {
        let [tag, job, worker, batch, tasks]: [Value; 5] = tuple.into_fields().try_into().ok()?;
        (tag.as_str()? == CLAIM).then_some(())?;
        let packed = bytes(tasks)?;
        let (mut reader, mut starts) = (Reader(&packed), Deltas::default());
        let mut tasks = Vec::new();
        while !reader.is_empty() {
            let start = starts.get(&mut reader)?;
            let run = reader.varint()?;
            let attempt = reader.varint()?;
            if run == 0 || run > (MAX_CLAIMED - tasks.len()) as u64 {
                return None;
            }
            tasks.extend((0..run).map(|k| (start.wrapping_add(k), attempt)));
        }
        Some(Claim {
            job: string(job)?,
            worker: string(worker)?,
            batch: uint(&batch)?,
            tasks,
        })
    }

    /// Claims of `job`.
    pub fn template(job: &str) -> Template {
        Template::new(vec![
            Field::Actual(CLAIM.into()),
            job_field(Some(job)),
            Field::Typed(Kind::Str),
            Field::Typed(Kind::Int),
            Field::Typed(Kind::Bytes),
        ])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the space (as far as the master knows); `suspect` after one queue
    /// scan that did not find it.
    Queued {
        attempt: u64,
        suspect: bool,
    },
    Running {
        attempt: u64,
    },
    Done {
        attempts: u64,
    },
}

/// The master's view of every task of a job; task ids count from 0.
#[derive(Debug, Default)]
pub struct Ledger {
    states: Vec<State>,
    done: usize,
    running: usize,
}

impl Ledger {
    /// Adds `n` tasks, queued at attempt 1; returns their ids.
    pub fn submit(&mut self, n: usize) -> Range<u64> {
        let start = self.states.len() as u64;
        self.states.extend(std::iter::repeat_n(
            State::Queued {
                attempt: 1,
                suspect: false,
            },
            n,
        ));
        start..self.states.len() as u64
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn done(&self) -> usize {
        self.done
    }

    /// Tasks with a live claim at the last check.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Queued tasks the last queue scan did not find.
    pub fn suspects(&self) -> usize {
        self.states
            .iter()
            .filter(|s| matches!(s, State::Queued { suspect: true, .. }))
            .count()
    }

    pub fn is_complete(&self) -> bool {
        self.done == self.states.len()
    }

    /// Records the first result of task `id`: returns how many attempts it
    /// took, or `None` for a duplicate or an unknown id.
    pub fn accept(&mut self, id: u64) -> Option<u64> {
        let state = self.states.get_mut(usize::try_from(id).ok()?)?;
        let attempts = match *state {
            State::Queued { attempt, .. } => attempt,
            State::Running { attempt } => {
                self.running -= 1;
                attempt
            }
            State::Done { .. } => return None,
        };
        *state = State::Done { attempts };
        self.done += 1;
        Some(attempts)
    }

    /// Applies a claim scan (taken *before* the results were drained):
    /// tasks claimed at their current attempt are running; running tasks not
    /// claimed any more lost their lease and are queued again. Returns the
    /// `(task_id, new_attempt)` to put back into the space.
    pub fn reconcile_leases(&mut self, claimed: &HashSet<(u64, u64)>) -> Vec<(u64, u64)> {
        let mut requeue = Vec::new();
        for (id, state) in self.states.iter_mut().enumerate() {
            let id = id as u64;
            match *state {
                State::Queued { attempt, .. } if claimed.contains(&(id, attempt)) => {
                    *state = State::Running { attempt };
                    self.running += 1;
                }
                State::Running { attempt } if !claimed.contains(&(id, attempt)) => {
                    self.running -= 1;
                    *state = State::Queued {
                        attempt: attempt + 1,
                        suspect: false,
                    };
                    requeue.push((id, attempt + 1));
                }
                _ => {}
            }
        }
        requeue
    }

    /// Applies a queue scan, taken when nothing was running: a queued task
    /// missing from two scans in a row was taken by a worker that died
    /// before claiming it, and is queued again at the next attempt.
    pub fn reconcile_queue(&mut self, queued: &HashSet<(u64, u64)>) -> Vec<(u64, u64)> {
        let mut requeue = Vec::new();
        for (id, state) in self.states.iter_mut().enumerate() {
            let id = id as u64;
            if let State::Queued { attempt, suspect } = *state {
                if queued.contains(&(id, attempt)) {
                    *state = State::Queued {
                        attempt,
                        suspect: false,
                    };
                } else if suspect {
                    *state = State::Queued {
                        attempt: attempt + 1,
                        suspect: false,
                    };
                    requeue.push((id, attempt + 1));
                } else {
                    *state = State::Queued {
                        attempt,
                        suspect: true,
                    };
                }
            }
        }
        requeue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(u64, u64)]) -> HashSet<(u64, u64)> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn claim_round_trips() {
        let claim = Claim {
            job: "j".into(),
            worker: "w".into(),
            batch: 4,
            tasks: vec![(0, 1), (9, 3)],
        };
        let tuple = claim.to_tuple();
        assert!(Claim::template("j").matches(&tuple));
        assert_eq!(Claim::from_tuple(tuple), Some(claim));
    }

    #[test]
    fn a_batch_of_consecutive_tasks_claims_in_a_few_bytes() {
        let mut tasks: Vec<(u64, u64)> = (1_000..1_256).map(|id| (id, 1)).collect();
        tasks.extend([(7, 2), (8, 2), (1_256, 1), (u64::MAX, 1), (0, 1)]);
        let claim = Claim {
            job: "j".into(),
            worker: "w".into(),
            batch: 1,
            tasks,
        };
        let tuple = claim.to_tuple();
        let Value::Bytes(packed) = &tuple.fields()[4] else {
            unreachable!()
        };
        assert!(packed.len() < 24, "{} bytes for five runs", packed.len());
        assert_eq!(Claim::from_tuple(tuple), Some(claim));
    }

    #[test]
    fn a_claim_with_an_empty_or_a_huge_run_is_refused() {
        let claim = |runs: &[u8]| {
            let mut fields = Claim {
                job: "j".into(),
                worker: "w".into(),
                batch: 1,
                tasks: vec![],
            }
            .to_tuple()
            .into_fields();
            fields[4] = Value::Bytes(runs.to_vec());
            Claim::from_tuple(Tuple::new(fields))
        };
        assert_eq!(claim(&[]).map(|c| c.tasks), Some(vec![]));
        assert_eq!(claim(&[2, 1, 1]).map(|c| c.tasks), Some(vec![(1, 1)]));
        assert_eq!(claim(&[2, 0, 1]), None, "an empty run");
        assert_eq!(
            claim(&[2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1]),
            None,
            "a run past the bound"
        );
        assert_eq!(claim(&[2, 1]), None, "cut short");
    }

    #[test]
    fn a_lapsed_lease_requeues_at_the_next_attempt() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.submit(3), 0..3);
        assert!(ledger.reconcile_leases(&set(&[(0, 1), (1, 1)])).is_empty());
        assert_eq!(ledger.running(), 2);
        assert_eq!(ledger.accept(1), Some(1));
        // Task 0's claim vanished without a result: its worker died.
        assert_eq!(ledger.reconcile_leases(&set(&[])), vec![(0, 2)]);
        // A stale claim for attempt 1 does not make attempt 2 running.
        assert!(ledger.reconcile_leases(&set(&[(0, 1)])).is_empty());
        assert_eq!(ledger.running(), 0);
        assert_eq!(ledger.accept(0), Some(2));
        assert_eq!(ledger.accept(0), None, "a second result is a duplicate");
        assert_eq!(ledger.done(), 2);
        assert!(!ledger.is_complete());
        assert_eq!(ledger.accept(2), Some(1));
        assert!(ledger.is_complete());
        assert_eq!(ledger.accept(99), None);
    }

    #[test]
    fn a_task_missing_from_two_queue_scans_is_requeued() {
        let mut ledger = Ledger::default();
        ledger.submit(2);
        assert!(ledger.reconcile_queue(&set(&[(0, 1)])).is_empty());
        // Task 1 reappears (it was only in flight): no longer suspect.
        assert!(ledger.reconcile_queue(&set(&[(0, 1), (1, 1)])).is_empty());
        assert!(ledger.reconcile_queue(&set(&[(1, 1)])).is_empty());
        assert_eq!(ledger.reconcile_queue(&set(&[(1, 1)])), vec![(0, 2)]);
    }
}
