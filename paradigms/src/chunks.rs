//! Tasks travel in chunks: one tuple, `("task", job, records)`, holds one
//! task or several, and a worker takes chunks.
//!
//! A task of a few microseconds costs less to run than its tuple costs the
//! space (stored, indexed, replicated, handed out, each copy decoded), so
//! a master that knows its tasks are short puts them several to a tuple,
//! as `multiprocessing.Pool`'s `chunksize` and Dask's batches do, while a
//! task that runs a millisecond or more travels alone: a chunk never holds
//! more than [`CHUNK_TIME`] of work by the master's estimate
//! ([`per_chunk`]), so a worker that took a chunk keeps no other worker
//! waiting for long. A chunk is taken whole, exactly once; a worker claims
//! and reports its tasks one by one as before, and a task whose lease
//! lapses is put again (alone or in a later chunk). A lane asks for as
//! many chunks as hold the tasks it wants by the size of the chunks it
//! took last; one that has seen only single tasks may take up to its
//! `max_batch` chunks at once when the master starts packing, and puts
//! back at once, unopened, the chunks past the tasks it wanted, so one
//! lane does not hold a whole job's tasks while other workers wait.
//!
//! `records` is, per task, its `task_id` (as its difference from the task
//! before's, zigzagged) and `attempt`, then its payload's length and the
//! bytes, numbers as varints ([`crate::records`]). A
//! chunk holds at most [`MAX_CHUNK`] tasks and [`crate::results::PACK_BYTES`]
//! of records, unless one task alone is larger.

use std::time::Duration;

use halley_substrate::{Field, Kind, Template, Tuple, Value};

use crate::records::{Deltas, PAYLOAD_PREFIX, Reader, VARINT_MAX, Writer};
use crate::results::PACK_BYTES;
use crate::task::{TASK, Task, bytes, job_field, string};

/// Work a chunk holds at most, by the master's estimate of a task's time.
pub const CHUNK_TIME: Duration = Duration::from_micros(500);
/// Tasks a chunk holds at most.
pub const MAX_CHUNK: usize = 256;
/// Bytes of a record before its payload, at most.
const HEAD: usize = 2 * VARINT_MAX + PAYLOAD_PREFIX;

/// Tasks a chunk should hold when a task takes `task_secs` (the master's
/// estimate; `None` before any result: one task a chunk).
pub fn per_chunk(task_secs: Option<f64>) -> usize {
    task_secs.map_or(1, |secs| {
        let fit = CHUNK_TIME.as_secs_f64() / secs.max(1e-9);
        (fit as usize).clamp(1, MAX_CHUNK)
    })
}

/// The chunks of `job`'s `(task_id, attempt, payload)` tasks, `per_chunk`
/// tasks (at least 1) and at most [`PACK_BYTES`] of records a chunk.
pub fn pack<'a>(
    job: &str,
    tasks: impl IntoIterator<Item = (u64, u64, &'a [u8])>,
    per_chunk: usize,
) -> Vec<Tuple> {
    let chunk = |records: Vec<u8>| Tuple::new(vec![TASK.into(), job.into(), Value::Bytes(records)]);
    let mut chunks = Vec::new();
    let (mut records, mut count, mut ids) = (Vec::new(), 0, Deltas::default());
    for (id, attempt, payload) in tasks {
        let len = HEAD + payload.len();
        if count > 0 && (count >= per_chunk.max(1) || records.len() + len > PACK_BYTES) {
            chunks.push(chunk(std::mem::take(&mut records)));
            (count, ids) = (0, Deltas::default());
        }
        let mut writer = Writer(&mut records);
        ids.put(&mut writer, id);
        writer.varint(attempt).payload(payload);
        count += 1;
    }
    if count > 0 {
        chunks.push(chunk(records));
    }
    chunks
}

/// The tasks a chunk holds, in order; `None` unless it has the layout, at
/// least one task, and records that parse to the last byte.
pub fn unpack(tuple: Tuple) -> Option<Vec<Task>> {
    let [tag, job, records]: [Value; 3] = tuple.into_fields().try_into().ok()?;
    (tag.as_str()? == TASK).then_some(())?;
    let (job, records) = (string(job)?, bytes(records)?);
    let (mut reader, mut ids) = (Reader(&records), Deltas::default());
    let mut tasks = Vec::new();
    while !reader.is_empty() {
        tasks.push(Task {
            job: job.clone(),
            id: ids.get(&mut reader)?,
            attempt: reader.varint()?,
            payload: reader.payload()?.to_vec(),
        });
    }
    (!tasks.is_empty()).then_some(tasks)
}

/// The chunks of `job`, or of every job when `None`.
pub fn template(job: Option<&str>) -> Template {
    Template::new(vec![
        Field::Actual(TASK.into()),
        job_field(job),
        Field::Typed(Kind::Bytes),
    ])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn task(id: u64, payload: &[u8]) -> Task {
        Task {
            job: "j".into(),
            id,
            attempt: 1 + id % 2,
            payload: payload.to_vec(),
        }
    }

    fn packed(tasks: &[Task], per: usize) -> Vec<Tuple> {
        pack(
            "j",
            tasks
                .iter()
                .map(|t| (t.id, t.attempt, t.payload.as_slice())),
            per,
        )
    }

    #[test]
    fn short_tasks_share_a_chunk_and_a_millisecond_task_goes_alone() {
        assert_eq!(per_chunk(None), 1, "nothing known yet");
        assert_eq!(per_chunk(Some(0.001)), 1);
        assert_eq!(per_chunk(Some(0.000_09)), 5);
        assert_eq!(per_chunk(Some(0.0)), MAX_CHUNK);
    }

    #[test]
    fn chunks_hold_their_count_and_bytes_and_their_template_matches() {
        let tasks: Vec<Task> = (0..7).map(|i| task(i, b"x")).collect();
        let chunks = packed(&tasks, 3);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| template(Some("j")).matches(c)));
        assert!(!template(Some("k")).matches(&chunks[0]));
        assert!(template(None).matches(&chunks[0]));
        let back: Vec<Task> = chunks
            .into_iter()
            .flat_map(|c| unpack(c).unwrap())
            .collect();
        assert_eq!(back, tasks);
        let big = vec![0u8; PACK_BYTES];
        let heavy = [task(1, b"a"), task(2, &big), task(3, b"b")];
        let sizes: Vec<usize> = packed(&heavy, MAX_CHUNK)
            .into_iter()
            .map(|c| unpack(c).unwrap().len())
            .collect();
        assert_eq!(sizes, [1, 1, 1], "a task past the bytes goes alone");
    }

    #[test]
    fn malformed_chunks_do_not_unpack() {
        let good = packed(&[task(1, b"abc")], 1).remove(0);
        let mut fields = good.fields().to_vec();
        let Value::Bytes(records) = fields[2].clone() else {
            unreachable!()
        };
        for (cut, why) in [(1, "cut short"), (records.len(), "empty")] {
            fields[2] = Value::Bytes(records[..records.len() - cut].to_vec());
            assert_eq!(unpack(Tuple::new(fields.clone())), None, "{why}");
        }
        fields[2] = Value::Int(1);
        assert_eq!(unpack(Tuple::new(fields)), None, "records not bytes");
        assert_eq!(unpack(crate::task::stop_tuple("w")), None, "a stop tuple");
    }

    proptest! {
        #[test]
        fn whatever_is_chunked_unpacks_the_same_in_order(
            items in prop::collection::vec(
                (any::<u64>(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..40)),
                1..50,
            ),
            per in 1..10usize,
        ) {
            let tasks: Vec<Task> = items
                .into_iter()
                .map(|(id, attempt, payload)| Task { job: "j".into(), id, attempt, payload })
                .collect();
            let chunks = packed(&tasks, per);
            prop_assert_eq!(chunks.len(), tasks.len().div_ceil(per));
            let back: Vec<Task> = chunks.into_iter().flat_map(|c| unpack(c).unwrap()).collect();
            prop_assert_eq!(back, tasks);
        }
    }
}
