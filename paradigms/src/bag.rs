//! Bags of shell commands: the tasks file, a task's payload ([`TaskSpec`])
//! and the payload a command's result carries ([`CommandOutput`]).
//!
//! A task's payload is its command line (UTF-8), or with options (a time
//! limit, retries, a directory) a NUL byte and the spec as JSON. Its result
//! payload is a [`CommandOutput`], encoded as: exit code (`i32` LE), a
//! flags byte (bit 0: stdout truncated, bit 1: stderr truncated, bit 2:
//! timed out, bit 3: a tail follows), stdout and stderr, each as a `u32` LE
//! length and the bytes, then the tail: each stream's full size (`u64` LE)
//! and the attempts (`u32` LE). Each stream is capped (the first `cap`
//! bytes are kept, the rest is counted and dropped) so one chatty command
//! cannot make a result tuple larger than the space accepts; the sizes say
//! what was dropped.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::shell::Shell;

/// Default cap on each of stdout and stderr kept in a result: 256 KiB.
pub const DEFAULT_OUTPUT_CAP: usize = 256 << 10;

/// The commands of a tasks file: every line that is neither empty nor
/// (after leading blanks) a `#` comment, trimmed, in file order; a line
/// ending in `\` goes on with the next (the backslash and the newline
/// removed, as `sh` does).
pub fn parse_tasks(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = if pending.is_empty() {
            line.trim()
        } else {
            line.trim_end()
        };
        if pending.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending).trim().to_owned());
            }
        }
    }
    let last = pending.trim();
    if !last.is_empty() {
        commands.push(last.to_owned());
    }
    commands
}

/// `text` quoted for `sh`: in single quotes, each `'` as `'\''`.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A task's payload: its command line, and how to run it. Encoded as the
/// bare command line when it has no options (what older submitters send),
/// else as a NUL byte (never part of a command line) and JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub command: String,
    /// Milliseconds before the task is killed and reported timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Runs again after a failure, up to this many more times.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// The directory it runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
    /// The task's id in its job (HALLEY_TASK_ID) when it is not the id of
    /// the task tuple (a resumed job submits only the tasks left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TaskSpec {
    pub fn new(command: impl Into<String>) -> Self {
        TaskSpec {
            command: command.into(),
            ..TaskSpec::default()
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        if self.timeout_ms.is_none()
            && self.retries == 0
            && self.workdir.is_none()
            && self.task_id.is_none()
        {
            return self.command.as_bytes().to_vec();
        }
        let mut out = vec![0];
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    /// The spec a payload holds; a payload that is not a spec is a command
    /// line (lossily decoded).
    pub fn decode(payload: &[u8]) -> TaskSpec {
        match payload.split_first() {
            Some((0, json)) => serde_json::from_slice(json).unwrap_or_else(|e| {
                TaskSpec::new(format!(
                    "echo 'halley: a malformed task payload: {}' >&2; exit 2",
                    e.to_string().replace('\'', "")
                ))
            }),
            _ => TaskSpec::new(String::from_utf8_lossy(payload)),
        }
    }

    /// How a worker runs task `id` of job `job`: `cap` bytes kept of each
    /// stream, HALLEY_TASK_ID and HALLEY_JOB_ID in its environment.
    pub fn shell(self, cap: usize, job: &str, id: u64) -> Shell {
        let env = vec![
            (
                "HALLEY_TASK_ID".to_owned(),
                self.task_id.unwrap_or(id).to_string(),
            ),
            ("HALLEY_JOB_ID".to_owned(), job.to_owned()),
        ];
        Shell {
            command: self.command,
            cap,
            timeout: self.timeout_ms.map(Duration::from_millis),
            retries: self.retries,
            workdir: self.workdir,
            env,
        }
    }
}

/// The exit code of a task killed at its time limit (as GNU `timeout`).
pub const TIMED_OUT: i32 = 124;

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code; 128 + n when killed by signal n; 127 when `sh`
    /// could not be started; [`TIMED_OUT`] when killed at its time limit.
    pub exit_code: i32,
    /// The first bytes of each stream (up to the worker's cap).
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// How many bytes each stream had in all.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub timed_out: bool,
    /// Times the command ran (retries after failures count).
    pub attempts: u32,
}

impl Default for CommandOutput {
    fn default() -> Self {
        CommandOutput {
            exit_code: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_bytes: 0,
            stderr_bytes: 0,
            timed_out: false,
            attempts: 1,
        }
    }
}

/// Flags byte: stdout truncated, stderr truncated, timed out, and a tail
/// (sizes, attempts) follows the streams.
const OUT_TRUNCATED: u8 = 1;
const ERR_TRUNCATED: u8 = 2;
const TIMED_OUT_FLAG: u8 = 4;
const TAIL: u8 = 8;

impl CommandOutput {
    pub fn stdout_truncated(&self) -> bool {
        self.stdout_bytes > self.stdout.len() as u64
    }

    pub fn stderr_truncated(&self) -> bool {
        self.stderr_bytes > self.stderr.len() as u64
    }

    /// Exit code, flags, the two streams (`u32` LE length and bytes), then
    /// the tail: each stream's full size (`u64` LE) and the attempts (`u32` LE).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33 + self.stdout.len() + self.stderr.len());
        out.extend_from_slice(&self.exit_code.to_le_bytes());
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let flags = flag(self.stdout_truncated(), OUT_TRUNCATED)
            | flag(self.stderr_truncated(), ERR_TRUNCATED)
            | flag(self.timed_out, TIMED_OUT_FLAG)
            | TAIL;
        out.push(flags);
        for stream in [&self.stdout, &self.stderr] {
            out.extend_from_slice(&(stream.len() as u32).to_le_bytes());
            out.extend_from_slice(stream);
        }
        out.extend_from_slice(&self.stdout_bytes.to_le_bytes());
        out.extend_from_slice(&self.stderr_bytes.to_le_bytes());
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out
    }

    /// The output `bytes` encode; `None` if they are malformed. A result
    /// without the tail (an older worker) counts its kept bytes as the
    /// sizes, plus one byte for a stream flagged truncated.
    pub fn decode(bytes: &[u8]) -> Option<CommandOutput> {
        let (code, rest) = bytes.split_first_chunk::<4>()?;
        let (flags, mut rest) = rest.split_first()?;
        let mut streams = [Vec::new(), Vec::new()];
        for stream in &mut streams {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = u32::from_le_bytes(*len) as usize;
            if tail.len() < len {
                return None;
            }
            *stream = tail[..len].to_vec();
            rest = &tail[len..];
        }
        let [stdout, stderr] = streams;
        let (stdout_bytes, stderr_bytes, attempts) = if flags & TAIL != 0 {
            let (out, rest) = rest.split_first_chunk::<8>()?;
            let (err, rest) = rest.split_first_chunk::<8>()?;
            let (attempts, rest) = rest.split_first_chunk::<4>()?;
            if !rest.is_empty() {
                return None;
            }
            (
                u64::from_le_bytes(*out).max(stdout.len() as u64),
                u64::from_le_bytes(*err).max(stderr.len() as u64),
                u32::from_le_bytes(*attempts).max(1),
            )
        } else {
            if !rest.is_empty() {
                return None;
            }
            (
                stdout.len() as u64 + u64::from(flags & OUT_TRUNCATED != 0),
                stderr.len() as u64 + u64::from(flags & ERR_TRUNCATED != 0),
                1,
            )
        };
        Some(CommandOutput {
            exit_code: i32::from_le_bytes(*code),
            stdout,
            stderr,
            stdout_bytes,
            stderr_bytes,
            timed_out: flags & TIMED_OUT_FLAG != 0,
            attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_skip_blank_and_comment_lines() {
        let text =
            "# a bag\necho a\n\n   \n  # indented comment\n  sleep 1  \necho '#not a comment'\n";
        assert_eq!(
            parse_tasks(text),
            ["echo a", "sleep 1", "echo '#not a comment'"]
        );
    }

    #[test]
    fn a_trailing_backslash_continues_the_command() {
        let text = "echo a \\\n   b \\\n  c\n# x\necho d\\\n";
        // As `sh` joins them: the indentation of the next line stays.
        assert_eq!(parse_tasks(text), ["echo a    b   c", "echo d"]);
    }

    #[test]
    fn specs_round_trip_and_plain_commands_stay_plain() {
        let plain = TaskSpec::new("echo hi");
        assert_eq!(plain.encode(), b"echo hi");
        assert_eq!(TaskSpec::decode(b"echo hi"), plain);
        let spec = TaskSpec {
            timeout_ms: Some(1500),
            retries: 2,
            workdir: Some("/tmp".into()),
            ..TaskSpec::new("sleep 9")
        };
        assert_eq!(spec.encode()[0], 0);
        assert_eq!(TaskSpec::decode(&spec.encode()), spec);
        let bad = TaskSpec::decode(b"\0{not json");
        assert!(bad.command.contains("malformed task payload"), "{bad:?}");
    }

    #[test]
    fn output_round_trips() {
        let out = CommandOutput {
            exit_code: -3,
            stdout: b"out".to_vec(),
            stdout_bytes: 1_000_002,
            timed_out: true,
            attempts: 3,
            ..CommandOutput::default()
        };
        let decoded = CommandOutput::decode(&out.encode()).unwrap();
        assert_eq!(decoded, out);
        assert!(decoded.stdout_truncated() && !decoded.stderr_truncated());
        let mut long = out.encode();
        long.push(0);
        assert_eq!(CommandOutput::decode(&long), None);
        assert_eq!(CommandOutput::decode(&out.encode()[..6]), None);
        // An older worker's result: no tail, truncation as a flag.
        let mut old = vec![0, 0, 0, 0, OUT_TRUNCATED];
        old.extend_from_slice(&2u32.to_le_bytes());
        old.extend_from_slice(b"ab");
        old.extend_from_slice(&0u32.to_le_bytes());
        let decoded = CommandOutput::decode(&old).unwrap();
        assert!(decoded.stdout_truncated());
        assert_eq!(decoded.attempts, 1);
    }
}
