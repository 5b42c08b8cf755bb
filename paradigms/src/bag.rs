//! Bags of shell commands: the tasks file, running one command, and the
//! payload a command's result carries.
//!
//! A task's payload is the command line (UTF-8). Its result payload is a
//! [`CommandOutput`], encoded as: exit code (`i32` LE), a flags byte (bit 0:
//! stdout truncated, bit 1: stderr truncated), then stdout and stderr, each
//! as a `u32` LE length and the bytes. Each stream is capped (the first
//! `cap` bytes are kept, the rest is read and dropped) so one chatty
//! command cannot make a result tuple larger than the space accepts.

use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Default cap on each of stdout and stderr kept in a result: 256 KiB.
pub const DEFAULT_OUTPUT_CAP: usize = 256 << 10;

/// The commands of a tasks file: every line that is neither empty nor
/// (after leading blanks) a `#` comment, trimmed, in file order.
pub fn parse_tasks(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// `text` quoted for `sh`: in single quotes, each `'` as `'\''`.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// What a command did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code; 128 + n when killed by signal n; 127 when `sh`
    /// could not be started.
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

impl CommandOutput {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13 + self.stdout.len() + self.stderr.len());
        out.extend_from_slice(&self.exit_code.to_le_bytes());
        out.push(u8::from(self.stdout_truncated) | u8::from(self.stderr_truncated) << 1);
        for stream in [&self.stdout, &self.stderr] {
            out.extend_from_slice(&(stream.len() as u32).to_le_bytes());
            out.extend_from_slice(stream);
        }
        out
    }

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
        if !rest.is_empty() {
            return None;
        }
        let [stdout, stderr] = streams;
        Some(CommandOutput {
            exit_code: i32::from_le_bytes(*code),
            stdout,
            stderr,
            stdout_truncated: flags & 1 != 0,
            stderr_truncated: flags & 2 != 0,
        })
    }
}

/// Runs `command` with `sh -c`, stdin closed, keeping at most `cap` bytes
/// of each output stream, without the worker's `HALLEY_TOKEN` in its
/// environment. The child is killed if this future is dropped.
pub async fn run_command(command: &str, cap: usize) -> CommandOutput {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        // The worker's key to the space is not the task's business.
        .env_remove("HALLEY_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            return CommandOutput {
                exit_code: 127,
                stderr: format!("halley: cannot start sh: {e}\n").into_bytes(),
                ..CommandOutput::default()
            };
        }
    };
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let ((stdout, stdout_truncated), (stderr, stderr_truncated)) =
        tokio::join!(read_capped(stdout, cap), read_capped(stderr, cap));
    let exit_code = match child.wait().await {
        Ok(status) => status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }),
        Err(_) => 127,
    };
    CommandOutput {
        exit_code,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
    }
}

/// Reads `reader` to its end, keeping the first `cap` bytes; true if more came.
async fn read_capped(reader: Option<impl AsyncRead + Unpin>, cap: usize) -> (Vec<u8>, bool) {
    let Some(mut reader) = reader else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
    (kept, truncated)
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
    fn output_round_trips() {
        let out = CommandOutput {
            exit_code: -3,
            stdout: b"out".to_vec(),
            stderr: vec![],
            stdout_truncated: true,
            stderr_truncated: false,
        };
        assert_eq!(CommandOutput::decode(&out.encode()), Some(out.clone()));
        let mut long = out.encode();
        long.push(0);
        assert_eq!(CommandOutput::decode(&long), None);
        assert_eq!(CommandOutput::decode(&out.encode()[..6]), None);
    }

    #[tokio::test]
    async fn commands_report_exit_codes_and_capped_output() {
        let out = run_command("echo hello; echo oops >&2; exit 3", 1024).await;
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.stdout, b"hello\n");
        assert_eq!(out.stderr, b"oops\n");
        let out = run_command("yes | head -c 100000", 10).await;
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.stdout, b"y\ny\ny\ny\ny\n");
        assert!(out.stdout_truncated && !out.stderr_truncated);
        assert_eq!(run_command("kill -9 $$", 10).await.exit_code, 137);
    }
}
