//! Results travel packed: one tuple holds the results of a batch a worker
//! ran, `("results", job, worker, resource, records)`, instead of a tuple
//! a task.
//!
//! A worker that ran 1,024 no-op tasks put 1,024 nine-field tuples, and
//! the space stored, indexed, replicated and handed back each; the master
//! decoded each. Packed, the space moves one tuple of bytes per batch, so
//! the cost per task of the way back is a copy of its record (measured in
//! BENCHMARKS.md, "Issue 13, packed results and chunked tasks"). As with a claim, what matters to the
//! space (the job) stays a field, and the rest is bytes only the master
//! reads.
//!
//! `records` is, per task, its `task_id` (as its difference from the record
//! before's, zigzagged), `attempt`, `started_us` (as its difference from
//! the record before's `finished_us`, zigzagged: a batch's tasks run one
//! after the other) and `finished_us` (its difference from `started_us`,
//! zigzagged), the payload's length, all varints ([`crate::records`]),
//! then the payload. A tuple holds at most [`PACK_BYTES`] of records
//! unless one record alone is larger, so a packed tuple stays well inside
//! a message's bound. The master drops a tuple whose records do not parse
//! to the last byte, with a warning: its tasks' claims lapse and they run
//! again, as for a worker that died.

use halley_substrate::{Field, Kind, Template, Tuple, Value};

use crate::records::{Deltas, PAYLOAD_PREFIX, Reader, VARINT_MAX, Writer};
use crate::task::{RESULTS, TaskResult, bytes, job_field, string};

/// Bytes of records a packed tuple holds at most (one larger record
/// travels alone): an eighth of a message's bound on the wire.
pub const PACK_BYTES: usize = 1 << 20;
/// Bytes of a record before its payload, at most.
const HEAD: usize = 4 * VARINT_MAX + PAYLOAD_PREFIX;

/// One task's result as a worker packs it (the worker and its resource
/// are the tuple's, not the record's).
#[derive(Clone, Copy, Debug)]
pub struct Outcome<'a> {
    pub job: &'a str,
    pub id: u64,
    pub attempt: u64,
    pub started_us: i64,
    pub finished_us: i64,
    pub payload: &'a [u8],
}

/// The packed tuples of `outcomes`, run by `worker` on `resource`: one per
/// job (more when a job's records pass [`PACK_BYTES`]), in the order
/// each job first appears.
pub fn pack<'a>(
    worker: &str,
    resource: &str,
    outcomes: impl IntoIterator<Item = Outcome<'a>>,
) -> Vec<Tuple> {
    let tuple = |job: &str, records: Vec<u8>| {
        Tuple::new(vec![
            RESULTS.into(),
            job.into(),
            worker.into(),
            resource.into(),
            Value::Bytes(records),
        ])
    };
    let mut done = Vec::new();
    // Few jobs share a batch: a list searched from its end is enough.
    let mut open: Vec<(&str, Vec<u8>, Deltas, Deltas)> = Vec::new();
    for outcome in outcomes {
        let at = match open.iter().rposition(|(job, ..)| *job == outcome.job) {
            Some(at) => at,
            None => {
                open.push((
                    outcome.job,
                    Vec::new(),
                    Deltas::default(),
                    Deltas::default(),
                ));
                open.len() - 1
            }
        };
        let (_, records, ids, times) = &mut open[at];
        let len = HEAD + outcome.payload.len();
        if !records.is_empty() && records.len() + len > PACK_BYTES {
            done.push(tuple(outcome.job, std::mem::take(records)));
            (*ids, *times) = (Deltas::default(), Deltas::default());
        }
        records.reserve(len);
        let mut writer = Writer(records);
        ids.put(&mut writer, outcome.id);
        writer.varint(outcome.attempt);
        times.put(&mut writer, outcome.started_us as u64);
        times.put(&mut writer, outcome.finished_us as u64);
        writer.payload(outcome.payload);
    }
    done.extend(
        open.into_iter()
            .map(|(job, records, ..)| tuple(job, records)),
    );
    done
}

/// The results a packed tuple holds, in the order they were packed;
/// `None` unless it has the layout and its records parse to the last byte.
pub fn unpack(tuple: Tuple) -> Option<Vec<TaskResult>> {
    let [tag, job, worker, resource, records]: [Value; 5] = tuple.into_fields().try_into().ok()?;
    (tag.as_str()? == RESULTS).then_some(())?;
    let (job, worker, resource) = (string(job)?, string(worker)?, string(resource)?);
    let records = bytes(records)?;
    let mut reader = Reader(&records);
    let (mut ids, mut times) = (Deltas::default(), Deltas::default());
    let mut results = Vec::new();
    while !reader.is_empty() {
        results.push(TaskResult {
            job: job.clone(),
            id: ids.get(&mut reader)?,
            attempt: reader.varint()?,
            worker: worker.clone(),
            resource: resource.clone(),
            started_us: times.get(&mut reader)? as i64,
            finished_us: times.get(&mut reader)? as i64,
            payload: reader.payload()?.to_vec(),
        });
    }
    Some(results)
}

/// The packed results of `job`, or of every job when `None`.
pub fn template(job: Option<&str>) -> Template {
    Template::new(vec![
        Field::Actual(RESULTS.into()),
        job_field(job),
        Field::Typed(Kind::Str),
        Field::Typed(Kind::Str),
        Field::Typed(Kind::Bytes),
    ])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn outcome<'a>(job: &'a str, id: u64, payload: &'a [u8]) -> Outcome<'a> {
        Outcome {
            job,
            id,
            attempt: 1 + id % 3,
            started_us: -5 + id as i64,
            finished_us: 1_000 + id as i64,
            payload,
        }
    }

    fn expected(o: &Outcome) -> TaskResult {
        TaskResult {
            job: o.job.into(),
            id: o.id,
            attempt: o.attempt,
            worker: "w".into(),
            resource: "cloud".into(),
            started_us: o.started_us,
            finished_us: o.finished_us,
            payload: o.payload.to_vec(),
        }
    }

    #[test]
    fn a_batch_packs_into_one_tuple_a_job_that_its_template_matches() {
        let outcomes = [
            outcome("a", 1, b"x"),
            outcome("b", 2, b""),
            outcome("a", 3, b"yz"),
        ];
        let tuples = pack("w", "cloud", outcomes);
        assert_eq!(tuples.len(), 2);
        assert!(template(Some("a")).matches(&tuples[0]));
        assert!(!template(Some("a")).matches(&tuples[1]));
        assert!(template(None).matches(&tuples[1]));
        let a: Vec<_> = [&outcomes[0], &outcomes[2]].map(expected).into();
        assert_eq!(unpack(tuples[0].clone()), Some(a));
        assert_eq!(
            unpack(tuples[1].clone()),
            Some(vec![expected(&outcomes[1])])
        );
    }

    #[test]
    fn records_past_the_bound_start_another_tuple_and_a_large_one_goes_alone() {
        let big = vec![7u8; PACK_BYTES];
        let half = vec![1u8; PACK_BYTES / 2];
        let outcomes = [
            outcome("j", 1, &half),
            outcome("j", 2, &half),
            outcome("j", 3, &big),
            outcome("j", 4, b"x"),
        ];
        let tuples = pack("w", "cloud", outcomes);
        let ids: Vec<Vec<u64>> = tuples
            .into_iter()
            .map(|t| unpack(t).unwrap().iter().map(|r| r.id).collect())
            .collect();
        assert_eq!(ids, [vec![1], vec![2], vec![3], vec![4]]);
    }

    #[test]
    fn malformed_tuples_do_not_unpack() {
        let good = pack("w", "cloud", [outcome("j", 1, b"abc")]).remove(0);
        let mut fields = good.fields().to_vec();
        let Value::Bytes(records) = fields[4].clone() else {
            unreachable!()
        };
        for cut in 1..records.len() {
            fields[4] = Value::Bytes(records[..records.len() - cut].to_vec());
            assert_eq!(unpack(Tuple::new(fields.clone())), None, "cut {cut}");
        }
        let mut longer = records.clone();
        longer.push(0);
        fields[4] = Value::Bytes(longer);
        assert_eq!(unpack(Tuple::new(fields.clone())), None, "a stray byte");
        fields[4] = Value::Int(3);
        assert_eq!(unpack(Tuple::new(fields)), None, "records not bytes");
        let chunk = crate::chunks::pack("j", [(1, 1, &b""[..])], 1).remove(0);
        assert_eq!(unpack(chunk), None, "a chunk of tasks");
    }

    proptest! {
        #[test]
        fn whatever_is_packed_unpacks_the_same(
            items in prop::collection::vec(
                (0..3u8, any::<u64>(), any::<u64>(), any::<i64>(), any::<i64>(),
                 prop::collection::vec(any::<u8>(), 0..40)),
                0..30,
            )
        ) {
            let jobs = ["a", "b", "c"];
            let outcomes: Vec<Outcome> = items
                .iter()
                .map(|(j, id, attempt, started, finished, payload)| Outcome {
                    job: jobs[*j as usize],
                    id: *id,
                    attempt: *attempt,
                    started_us: *started,
                    finished_us: *finished,
                    payload,
                })
                .collect();
            let mut got: Vec<TaskResult> =
                pack("w", "cloud", outcomes.clone()).into_iter().flat_map(|t| unpack(t).unwrap()).collect();
            let mut want: Vec<TaskResult> = outcomes.iter().map(expected).collect();
            // Grouped by job, in order within a job.
            got.sort_by(|x, y| x.job.cmp(&y.job));
            want.sort_by(|x, y| x.job.cmp(&y.job));
            prop_assert_eq!(got, want);
        }
    }
}
