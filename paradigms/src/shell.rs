//! Running one shell-command task: `sh -c` in a process group of its own,
//! stdin closed, each output stream capped, an optional time limit and
//! retries, `HALLEY_TASK_ID`/`HALLEY_JOB_ID` in its environment.
//!
//! The task's whole process tree is its process group: when the time limit
//! passes, or the future is dropped (the worker aborts the job), the group
//! is killed with SIGKILL, so no grandchild (`sh -c "sleep 60; …"`)
//! outlives its task.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::bag::{CommandOutput, TIMED_OUT};

/// What to run and how.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shell {
    pub command: String,
    /// Bytes kept of each of stdout and stderr.
    pub cap: usize,
    /// Killed (and reported timed out) after this long.
    pub timeout: Option<Duration>,
    /// Runs again after a non-zero exit (or a time-out), up to this many
    /// more times.
    pub retries: u32,
    /// Where it runs (default: the worker's directory).
    pub workdir: Option<PathBuf>,
    /// Extra environment (`HALLEY_TASK_ID`, `HALLEY_JOB_ID`, …).
    pub env: Vec<(String, String)>,
}

impl Shell {
    /// Runs the command, again after a failure while retries are left;
    /// the output is the last attempt's, with the attempts counted.
    pub async fn run(&self) -> CommandOutput {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut output = self.run_once().await;
            output.attempts = attempts;
            if output.exit_code == 0 || attempts > self.retries {
                return output;
            }
        }
    }

    async fn run_once(&self) -> CommandOutput {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            // The worker's key to the space is not the task's business.
            .env_remove("HALLEY_TOKEN")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.workdir {
            command.current_dir(dir);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let place = self
                    .workdir
                    .as_ref()
                    .map_or(String::new(), |d| format!(" in {}", d.display()));
                return CommandOutput {
                    exit_code: 127,
                    stderr: format!("halley: cannot start sh{place}: {e}\n").into_bytes(),
                    ..CommandOutput::default()
                };
            }
        };
        let group = Group(child.id());
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let cap = self.cap;
        let ran = async {
            let (out, err) = tokio::join!(read_capped(stdout, cap), read_capped(stderr, cap));
            (out, err, child.wait().await)
        };
        let (out, err, status) = match self.timeout {
            None => ran.await,
            Some(limit) => match tokio::time::timeout(limit, ran).await {
                Ok(done) => done,
                Err(_) => {
                    drop(group);
                    return CommandOutput {
                        exit_code: TIMED_OUT,
                        timed_out: true,
                        stderr: format!(
                            "halley: killed after the task's time limit of {}\n",
                            humantime::format_duration(limit)
                        )
                        .into_bytes(),
                        ..CommandOutput::default()
                    };
                }
            },
        };
        group.reaped();
        let exit_code = match status {
            Ok(status) => status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(0)
            }),
            Err(_) => 127,
        };
        CommandOutput {
            exit_code,
            stdout: out.kept,
            stderr: err.kept,
            stdout_bytes: out.total,
            stderr_bytes: err.total,
            ..CommandOutput::default()
        }
    }
}

/// A task's process group, killed (SIGKILL) when dropped unless its leader
/// was reaped: what the task started dies with it.
#[derive(Debug)]
struct Group(Option<u32>);

impl Group {
    /// The leader exited and was reaped: leave its group alone (its pid may
    /// be reused).
    fn reaped(mut self) {
        self.0 = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // No unsafe code here: `kill` is the portable way to signal a group.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A stream read to its end: the first bytes kept, and how many came.
#[derive(Debug, Default)]
struct Read {
    kept: Vec<u8>,
    total: u64,
}

/// Reads `reader` to its end, keeping the first `cap` bytes.
async fn read_capped(reader: Option<impl AsyncRead + Unpin>, cap: usize) -> Read {
    let mut read = Read::default();
    let Some(mut reader) = reader else {
        return read;
    };
    let mut buf = [0u8; 8192];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(read.kept.len());
        read.kept.extend_from_slice(&buf[..n.min(room)]);
        read.total += n as u64;
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(command: &str, cap: usize) -> Shell {
        Shell {
            command: command.into(),
            cap,
            ..Shell::default()
        }
    }

    #[tokio::test]
    async fn commands_report_exit_codes_and_capped_output_with_its_size() {
        let out = shell("echo hello; echo oops >&2; exit 3", 1024).run().await;
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.stdout, b"hello\n");
        assert_eq!(out.stderr, b"oops\n");
        assert_eq!(out.attempts, 1);
        let out = shell("yes | head -c 100000", 10).run().await;
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.stdout, b"y\ny\ny\ny\ny\n");
        assert!(out.stdout_truncated() && !out.stderr_truncated());
        assert_eq!(out.stdout_bytes, 100_000);
        assert_eq!(shell("kill -9 $$", 10).run().await.exit_code, 137);
    }

    #[tokio::test]
    async fn a_task_past_its_time_limit_is_killed_with_its_children() {
        let dir = std::env::temp_dir().join(format!("halley-shell-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        let task = Shell {
            timeout: Some(Duration::from_secs(1)),
            retries: 1,
            ..shell(
                &format!("sleep 30 & echo $! >> {}; wait", pid_file.display()),
                64,
            )
        };
        let out = task.run().await;
        assert!(out.timed_out);
        assert_eq!(out.exit_code, TIMED_OUT);
        assert_eq!(out.attempts, 2, "one retry");
        let gone = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit(')').next().unwrap().trim().starts_with('Z')
            })
        };
        // A SIGKILL is sent at once, but the process ends a moment later.
        let until = std::time::Instant::now() + Duration::from_secs(10);
        let pids = std::fs::read_to_string(&pid_file).unwrap();
        assert_eq!(pids.lines().count(), 2, "{pids}");
        for pid in pids.lines() {
            while !gone(pid) {
                assert!(
                    std::time::Instant::now() < until,
                    "sleep {pid} outlived its group"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_environment_and_workdir_reach_the_task_and_retries_stop_at_success() {
        let dir = std::env::temp_dir().join(format!("halley-shell-wd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let task = Shell {
            workdir: Some(dir.clone()),
            env: vec![("HALLEY_TASK_ID".into(), "7".into())],
            retries: 5,
            ..shell(
                "echo x >> tries; echo $HALLEY_TASK_ID; test $(wc -l < tries) -ge 2",
                64,
            )
        };
        let out = task.run().await;
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.attempts, 2);
        assert_eq!(out.stdout, b"7\n");
        let missing = Shell {
            workdir: Some(dir.join("nope")),
            ..shell("true", 64)
        };
        let out = missing.run().await;
        assert_eq!(out.exit_code, 127);
        assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
