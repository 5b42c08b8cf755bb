//! The tuples of a master-worker job and their codecs.
//!
//! Every tuple starts with a tag and the job id, so one space can hold many
//! jobs and a template with the job as an actual value reaches only its own.
//!
//! | tuple | fields |
//! | --- | --- |
//! | task | `("task", job: str, records: bytes)` — one task or a chunk of short ones (see [`crate::chunks`]) |
//! | claim | `("claim", job: str, worker: str, batch: int, tasks: bytes)` |
//! | results | `("results", job: str, worker: str, resource: str, records: bytes)` — the results of tasks a worker ran, packed (see [`crate::results`]) |
//! | stop | `("stop", target: str)` — target is a worker id or a job id; a job's lives an hour ([`crate::master::STOP_NOTICE_TTL`]) |
//! | abort | `("abort", job: str)` — kill the job's running tasks now |
//! | heartbeat | `("worker", worker: str, resource: str, busy_slots: int)` |
//!
//! `attempt` counts from 1. `started_us`/`finished_us` are microseconds since
//! the Unix epoch on the worker's clock. A claim's `tasks` field lists the
//! `(task_id, attempt)` pairs of one batch a worker took, as runs of
//! consecutive ids with one attempt: each run's first id (its difference
//! from the run before's, zigzagged), its length and its attempt, varints
//! ([`crate::records`]; see [`crate::lease`] for how claims form leases).

use std::time::{SystemTime, UNIX_EPOCH};

use halley_substrate::{Field, Kind, Template, Tuple, Value};

/// Tags of the tuples above.
pub const TASK: &str = "task";
pub const CLAIM: &str = "claim";
pub const RESULTS: &str = "results";
pub const STOP: &str = "stop";
pub const HEARTBEAT: &str = "worker";
pub const ABORT: &str = "abort";

/// A task as a worker receives it (from a chunk, [`crate::chunks::unpack`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub job: String,
    pub id: u64,
    pub attempt: u64,
    pub payload: Vec<u8>,
}

/// What a worker reports for one task (packed with others of its batch
/// by [`crate::results::pack`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskResult {
    pub job: String,
    pub id: u64,
    /// The attempt that produced this result.
    pub attempt: u64,
    pub worker: String,
    pub resource: String,
    pub started_us: i64,
    pub finished_us: i64,
    pub payload: Vec<u8>,
}

impl TaskResult {
    /// Seconds the task ran, on the worker's clock.
    pub fn run_secs(&self) -> f64 {
        (self.finished_us - self.started_us) as f64 / 1e6
    }
}

/// A worker's sign of life, put with the lease as time-to-live every third
/// of the lease: a worker is alive while one of its heartbeats is in the space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub worker: String,
    pub resource: String,
    /// Slots running a task when it was put.
    pub busy_slots: u64,
}

impl Heartbeat {
    pub fn to_tuple(&self) -> Tuple {
        Tuple::new(vec![
            HEARTBEAT.into(),
            self.worker.as_str().into(),
            self.resource.as_str().into(),
            int(self.busy_slots),
        ])
    }

    pub fn from_tuple(tuple: Tuple) -> Option<Heartbeat> {
        let [tag, worker, resource, busy]: [Value; 4] = tuple.into_fields().try_into().ok()?;
        (tag.as_str()? == HEARTBEAT).then_some(())?;
        Some(Heartbeat {
            worker: string(worker)?,
            resource: string(resource)?,
            busy_slots: uint(&busy)?,
        })
    }

    /// Every worker's heartbeats.
    pub fn template() -> Template {
        Template::new(vec![
            Field::Actual(HEARTBEAT.into()),
            Field::Typed(Kind::Str),
            Field::Typed(Kind::Str),
            Field::Typed(Kind::Int),
        ])
    }
}

/// The stop tuple for a worker id or a job id.
pub fn stop_tuple(target: &str) -> Tuple {
    Tuple::new(vec![STOP.into(), target.into()])
}

/// The template matching [`stop_tuple`]`(target)`.
pub fn stop_template(target: &str) -> Template {
    Template::exact(&stop_tuple(target))
}

/// The abort notice of `job`: workers kill its running tasks at once (an
/// interrupted job), and a worker bound to the job exits.
pub fn abort_tuple(job: &str) -> Tuple {
    Tuple::new(vec![ABORT.into(), job.into()])
}

/// The abort notices of `job`, or of every job when `None`.
pub fn abort_template(job: Option<&str>) -> Template {
    Template::new(vec![Field::Actual(ABORT.into()), job_field(job)])
}

/// The job an abort notice names.
pub fn aborted_job(tuple: Tuple) -> Option<String> {
    let [tag, job]: [Value; 2] = tuple.into_fields().try_into().ok()?;
    (tag.as_str()? == ABORT).then_some(())?;
    string(job)
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn job_field(job: Option<&str>) -> Field {
    job.map_or(Field::Typed(Kind::Str), |j| Field::Actual(j.into()))
}

pub(crate) fn int(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

pub(crate) fn uint(v: &Value) -> Option<u64> {
    u64::try_from(v.as_int()?).ok()
}

pub(crate) fn string(v: Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

pub(crate) fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_round_trips() {
        let beat = Heartbeat {
            worker: "w".into(),
            resource: "cloud".into(),
            busy_slots: 2,
        };
        assert!(Heartbeat::template().matches(&beat.to_tuple()));
        assert_eq!(Heartbeat::from_tuple(beat.to_tuple()), Some(beat));
    }
}
