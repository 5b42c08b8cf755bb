//! Streaming MapReduce (`halley mapreduce`): map and reduce shell commands.
//!
//! A map task runs the map command (`sh -c`) with one input split on stdin;
//! every line it prints is `key<TAB>value` as Hadoop streaming reads it
//! ([`Keys`]: the key is the line up to the `fields`-th separator, tab by
//! default; a line with fewer separators is all key, with an empty value)
//! and goes, whole, to the partition of its key's hash. A reduce task
//! gathers its partition's lines from every map task, sorts them by key
//! (then by the whole line, so the order is deterministic), feeds them to
//! the reduce command and writes what it prints to `<out>/part-<r>` (aside
//! first, renamed once the command succeeded: a failed reducer leaves no
//! partial part). The lines stay in this process's memory between the two;
//! only task control goes through the space.

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
    /// Where a line's key ends.
    pub keys: Keys,
}

/// How a map output line splits into key and value, as Hadoop streaming's
/// `stream.map.output.field.separator` and
/// `stream.num.map.output.key.fields`: the key is the line up to its
/// `fields`-th `separator`; a line with fewer is all key (empty value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    pub separator: u8,
    pub fields: usize,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            separator: b'\t',
            fields: 1,
        }
    }
}

impl Keys {
    /// The key of `line` (its newline excluded).
    pub fn key_of<'l>(&self, line: &'l [u8]) -> &'l [u8] {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let mut seen = 0;
        for at in memchr::memchr_iter(self.separator, line) {
            seen += 1;
            if seen == self.fields.max(1) {
                return &line[..at];
            }
        }
        line
    }
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
        for line in stdout.split_inclusive(|&b| b == b'\n') {
            let key = self.keys.key_of(line);
            let part = &mut parts[partition_of(hash_key(key), partitions.max(1))];
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
        let sorted = sort_by_key(buffers, self.keys);
        let path = part_path(&self.out, partition);
        let aside = self
            .out
            .join(format!(".part-{partition}.{}", std::process::id()));
        let name = format!("partition {partition}");
        let file =
            File::create(&aside).map_err(|e| format!("cannot create {}: {e}", aside.display()))?;
        let ran = run_command(self, &self.reduce, &sorted, Stdio::from(file))
            .map_err(|e| format!("reduce command `{}` on {name}: {e}", self.reduce))
            .and_then(|(status, _, stderr)| check(&self.reduce, "reduce", &name, status, &stderr))
            .and_then(|()| {
                std::fs::rename(&aside, &path)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            });
        if ran.is_err() {
            let _ = std::fs::remove_file(&aside);
        }
        ran
    }
}

/// The lines of `buffers` sorted by key, then by the whole line. Lines are
/// grouped by key in a hash map first, so only the distinct keys are sorted:
/// a word count's millions of lines have some thousands of keys.
fn sort_by_key(buffers: &[Vec<u8>], keys: Keys) -> Vec<u8> {
    let mut groups: HashMap<&[u8], Vec<&[u8]>, FxBuildHasher> = HashMap::default();
    for line in buffers
        .iter()
        .flat_map(|b| b.split_inclusive(|&c| c == b'\n'))
    {
        groups.entry(keys.key_of(line)).or_default().push(line);
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
        let sorted = sort_by_key(&[a, b], Keys::default());
        assert_eq!(
            String::from_utf8(sorted).unwrap(),
            "a\t10\na\t9\na\x01\t0\na\x01\t1\nb\t1\nb\t2\nc\t5\n"
        );
    }

    #[test]
    fn keys_end_at_the_nth_separator_and_a_line_without_one_is_all_key() {
        let tab = Keys::default();
        assert_eq!(tab.key_of(b"word\t1\n"), b"word");
        assert_eq!(tab.key_of(b"no tab here\n"), b"no tab here");
        assert_eq!(tab.key_of(b"\n"), b"");
        let two = Keys {
            separator: b',',
            fields: 2,
        };
        assert_eq!(two.key_of(b"a,b,c\n"), b"a,b");
        assert_eq!(two.key_of(b"a,b"), b"a,b");
        assert_eq!(two.key_of(b"a"), b"a");
        let sorted = sort_by_key(&[b"b,1,x\na,2,y\na,1,z\n".to_vec()], two);
        assert_eq!(sorted, b"a,1,z\na,2,y\nb,1,x\n");
    }
}
