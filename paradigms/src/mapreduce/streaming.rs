//! Streaming MapReduce (`halley mapreduce`): map and reduce shell commands.
//!
//! A map task runs the map command (`sh -c`) with one input split on stdin;
//! every line it prints must be `key<TAB>value`, and goes, whole, to the
//! partition of its key's hash. A reduce task gathers its partition's lines
//! from every map task, sorts them by key (then by the whole line, so the
//! order is deterministic), feeds them to the reduce command and writes what
//! it prints to `<out>/part-<r>`. The lines stay in this process's memory
//! between the two; only task control goes through the space.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;

use halley_substrate::Space;
use rustc_hash::FxBuildHasher;
use tokio::runtime::Handle;

use super::control::{self, Error, Tasks};
use super::emit::{hash_key, partition_of};
use super::input::{Input, Split};
use super::job::MapReduce;

/// A streaming job: the commands and where the output goes.
#[derive(Clone, Debug)]
pub struct Streaming {
    pub map: String,
    pub reduce: String,
    /// `part-<r>` files are written here; the directory must exist.
    pub out: PathBuf,
    /// The directory the commands run in (by default this process's).
    pub dir: Option<PathBuf>,
}

/// How much of a failed command's stderr goes into the error message.
const STDERR_TAIL: usize = 2048;

impl Streaming {
    /// Runs the job over `input`; the shape (workers, splits, reducers) is
    /// taken from `shape`.
    pub fn run<S: Space>(
        &self,
        space: &S,
        rt: &Handle,
        input: &Input,
        shape: &MapReduce,
    ) -> Result<(), Error> {
        let (splits, plan) = shape.plan(input);
        let tasks = StreamTasks {
            job: self,
            input,
            splits,
            shuffled: (0..plan.partitions).map(|_| Mutex::default()).collect(),
        };
        control::execute(space, rt, plan, &tasks)
    }
}

struct StreamTasks<'a> {
    job: &'a Streaming,
    input: &'a Input,
    splits: Vec<Split<'a>>,
    /// Partition r's lines, one buffer per finished map task.
    shuffled: Vec<Mutex<Vec<Vec<u8>>>>,
}

impl StreamTasks<'_> {
    fn describe(&self, index: usize, split: &Split<'_>) -> String {
        format!(
            "split {index} ({}, bytes {}..{})",
            self.input.files()[split.file].0.display(),
            split.offset,
            split.offset + split.data.len()
        )
    }
}

impl Tasks for StreamTasks<'_> {
    fn map(&self, index: usize) -> Result<(), String> {
        let split = self.splits.get(index).ok_or("no such split")?;
        let name = self.describe(index, split);
        let parts = self.job.map_split(&name, split.data, self.shuffled.len())?;
        for (lines, slot) in parts.into_iter().zip(&self.shuffled) {
            lock(slot).push(lines);
        }
        Ok(())
    }

    fn reduce(&self, partition: usize) -> Result<(), String> {
        let slot = self.shuffled.get(partition).ok_or("no such partition")?;
        let buffers = std::mem::take(&mut *lock(slot));
        self.job.reduce_partition(partition, &buffers)
    }
}

impl Streaming {
    /// One map task: runs the map command on `data` (`name` says which
    /// split in errors); returns its lines by partition, of `partitions`.
    pub fn map_split(
        &self,
        name: &str,
        data: &[u8],
        partitions: usize,
    ) -> Result<Vec<Vec<u8>>, String> {
        let (status, stdout, stderr) = run_command(self, &self.map, data, Stdio::piped())
            .map_err(|e| format!("map command `{}` on {name}: {e}", self.map))?;
        check(&self.map, "map", name, status, &stderr)?;
        let mut parts = vec![Vec::new(); partitions.max(1)];
        for (number, line) in stdout.split_inclusive(|&b| b == b'\n').enumerate() {
            let Some(tab) = memchr::memchr(b'\t', line) else {
                let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(line));
                return Err(format!(
                    "map command `{}` on {name}: output line {} has no tab \
                     (expected key<TAB>value): {text:?}",
                    self.map,
                    number + 1
                ));
            };
            let part = &mut parts[partition_of(hash_key(&line[..tab]), partitions.max(1))];
            part.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                part.push(b'\n');
            }
        }
        Ok(parts)
    }

    /// One reduce task: sorts partition `partition`'s lines (`buffers`,
    /// one per map task) by key and feeds them to the reduce command, whose
    /// output goes to `<out>/part-<partition>`.
    pub fn reduce_partition(&self, partition: usize, buffers: &[Vec<u8>]) -> Result<(), String> {
        let sorted = sort_by_key(buffers);
        let path = part_path(&self.out, partition);
        let name = format!("partition {partition}");
        let file =
            File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let (status, _, stderr) = run_command(self, &self.reduce, &sorted, Stdio::from(file))
            .map_err(|e| format!("reduce command `{}` on {name}: {e}", self.reduce))?;
        check(&self.reduce, "reduce", &name, status, &stderr)
    }
}

/// The lines of `buffers` sorted by key, then by the whole line. Lines are
/// grouped by key in a hash map first, so only the distinct keys are sorted:
/// a word count's millions of lines have some thousands of keys.
fn sort_by_key(buffers: &[Vec<u8>]) -> Vec<u8> {
    let mut groups: HashMap<&[u8], Vec<&[u8]>, FxBuildHasher> = HashMap::default();
    for line in buffers
        .iter()
        .flat_map(|b| b.split_inclusive(|&c| c == b'\n'))
    {
        groups.entry(key_of(line)).or_default().push(line);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut sorted = Vec::with_capacity(buffers.iter().map(Vec::len).sum());
    for (_, mut lines) in groups {
        lines.sort_unstable();
        for line in lines {
            sorted.extend_from_slice(line);
        }
    }
    sorted
}

/// The key of a `key<TAB>value\n` line.
fn key_of(line: &[u8]) -> &[u8] {
    memchr::memchr(b'\t', line).map_or(line, |tab| &line[..tab])
}

/// A command that exited non-zero is an error naming it, the task's input
/// and the end of its stderr.
fn check(
    command: &str,
    role: &str,
    name: &str,
    status: ExitStatus,
    stderr: &[u8],
) -> Result<(), String> {
    if status.success() {
        return Ok(());
    }
    let mut message = format!("{role} command `{command}` on {name} failed ({status})");
    let tail = &stderr[stderr.len().saturating_sub(STDERR_TAIL)..];
    let tail = String::from_utf8_lossy(tail);
    if !tail.trim().is_empty() {
        let _ = write!(message, "; its stderr ends:\n{}", tail.trim_end());
    }
    Err(message)
}

/// Runs `sh -c command` with `input` on stdin; returns its status, its
/// stdout (when `stdout` is piped) and its stderr.
fn run_command(
    job: &Streaming,
    command: &str,
    input: &[u8],
    stdout: Stdio,
) -> io::Result<(ExitStatus, Vec<u8>, Vec<u8>)> {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped());
    if let Some(dir) = &job.dir {
        sh.current_dir(dir);
    }
    let mut child = sh.spawn()?;
    let result = feed_and_collect(&mut child, input);
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let (out, err) = result?;
    Ok((status, out, err))
}

/// Writes `input` to the child's stdin while reading its stdout and stderr,
/// each on its own thread so that no pipe can fill up and block the others.
fn feed_and_collect(child: &mut Child, input: &[u8]) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let mut stderr = child.stderr.take().expect("stderr is piped");
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || match stdin {
            // A command that stops reading early (`head`) is not an error.
            Some(mut pipe) => match pipe.write_all(input) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        });
        let reader = scope.spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = stdout {
                pipe.read_to_end(&mut out)?;
            }
            Ok::<_, io::Error>(out)
        });
        let mut err = Vec::new();
        stderr.read_to_end(&mut err)?;
        writer.join().expect("the writer does not panic")?;
        let out = reader.join().expect("the reader does not panic")?;
        Ok((out, err))
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The path of reducer `r`'s output in `out`.
pub fn part_path(out: &Path, r: usize) -> PathBuf {
    out.join(format!("part-{r}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_sorted_by_key_before_the_rest() {
        // A byte below TAB in a key must still sort by key first.
        let a = b"b\t2\na\x01\t1\na\t9\nb\t1\na\t10\n".to_vec();
        let b = b"a\x01\t0\nc\t5\n".to_vec();
        let sorted = sort_by_key(&[a, b]);
        assert_eq!(
            String::from_utf8(sorted).unwrap(),
            "a\t10\na\t9\na\x01\t0\na\x01\t1\nb\t1\nb\t2\nc\t5\n"
        );
    }
}
