//! Helpers of the `halley run` and `halley workflow` tests: scratch
//! directories removed on drop, child processes killed on drop, bounded
//! waits, the processes a job left, and its billing.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("halley-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process, SIGKILLed and reaped when dropped.
pub struct Guard(pub Option<Child>);

impl Guard {
    pub fn spawn(command: &mut Command) -> Guard {
        Guard(Some(command.spawn().expect("spawn halley")))
    }

    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }

    /// Waits at most `limit` for the process to end; returns its output.
    pub fn wait(mut self, limit: Duration) -> Output {
        let until = Instant::now() + limit;
        while self.child().try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < until,
                "halley did not finish within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.0
            .take()
            .expect("child")
            .wait_with_output()
            .expect("output")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn halley() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_halley"));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// `halley run <tasks> --out <out>` with no policy, waited for a minute at
/// most (killed after).
pub fn run_tasks(tasks: &Path, out: &Path) -> Output {
    Guard::spawn(halley().arg("run").arg(tasks).arg("--out").arg(out)).wait(Duration::from_secs(60))
}

/// `halley <verb> <input> --policy <policy> --out <out>`, to add to.
pub fn job(verb: &str, input: &Path, policy: &Path, out: &Path) -> Command {
    let mut command = halley();
    command
        .arg(verb)
        .arg(input)
        .arg("--policy")
        .arg(policy)
        .arg("--out")
        .arg(out);
    command
}

/// Polls `probe` every 20 ms for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < until, "condition not met within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `<out>/summary.json`, parsed.
pub fn summary(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// Runs `command` (a `halley` job) with `marker` in its environment (its
/// workers inherit it: see [`marked`]), stdout and stderr to `dir/stdout`
/// and `dir/stderr`; waits at most `limit`; returns its exit code, which
/// must be 0 or 1 (the job ran).
pub fn run_marked(command: &mut Command, dir: &Scratch, marker: &str, limit: Duration) -> i32 {
    let stdout = std::fs::File::create(dir.path("stdout")).unwrap();
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    command
        .env("HALLEY_TEST_MARK", marker)
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    let mut job = Guard::spawn(command);
    let log = || std::fs::read_to_string(dir.path("stderr")).unwrap_or_default();
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(status) = job.child().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < until,
            "halley did not finish within {limit:?}: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let code = status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "exit {code}: {}", log());
    code
}

/// SIGKILLs, when dropped, every process still marked with its marker
/// ([`marked`]): a test that fails leaves no task running.
pub struct KillMarked(pub String);

impl Drop for KillMarked {
    fn drop(&mut self) {
        for pid in marked(&self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Live (not zombie) processes whose environment holds `marker`.
pub fn marked(marker: &str) -> Vec<u32> {
    let needle = format!("HALLEY_TEST_MARK={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(true);
            !zombie
                && environ
                    .split(|b| *b == 0)
                    .any(|var| var == needle.as_bytes())
        })
        .collect()
}

/// No process of the job is left (bounded wait: the last ones are exiting).
pub fn assert_none_left(marker: &str) {
    wait_for(Duration::from_secs(10), || {
        marked(marker).is_empty().then_some(())
    });
}

/// The cost is the paid machines' billed time × price, and the machines are
/// those the manager's decisions started, each released by a decision.
pub fn assert_billed(summary: &serde_json::Value, paid: &str, per_second: f64) {
    let machines = summary["machines"].as_array().unwrap();
    let mut total = 0.0;
    for m in machines {
        let requested = m["requested_at"].as_f64().unwrap();
        let released = m["released_at"].as_f64().expect("released");
        assert!(released >= requested, "{m}");
        let expected = if m["class"] == paid {
            (released - requested) * per_second
        } else {
            0.0
        };
        assert!((m["cost"].as_f64().unwrap() - expected).abs() < 1e-9, "{m}");
        total += expected;
    }
    let cost = summary["cost"].as_f64().unwrap();
    assert!((cost - total).abs() < 1e-9, "cost {cost} != billed {total}");
    let started: u64 = summary["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "start" && d["class"] == paid)
        .map(|d| d["count"].as_u64().unwrap())
        .sum();
    let paid_machines = machines.iter().filter(|m| m["class"] == paid).count();
    assert_eq!(started, paid_machines as u64, "{machines:?}");
    for d in summary["decisions"].as_array().unwrap() {
        assert!(!d["reason"].as_str().unwrap().is_empty(), "{d}");
    }
    // Each paid machine was released (or stopped with its tasks) by a
    // decision: during the job, or at its end ("the job is over").
    let released: Vec<String> = summary["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "release" || d["action"] == "stop")
        .map(|d| format!("m{}", d["machine"]))
        .collect();
    for m in machines.iter().filter(|m| m["class"] == paid) {
        let id = m["id"].as_str().unwrap();
        assert!(
            released.iter().any(|r| r == id),
            "{id} released without a decision: {}",
            summary["decisions"]
        );
    }
}

/// A policy of one private slot and a `command` class `lab` ($36 an hour,
/// 1 s boot, at most `max` machines) started by the fixture script `start`
/// and stopped by `stop-worker.sh` (tests/fixtures/command), for `deadline`.
pub fn command_policy(deadline: &str, max: u32, start: &str) -> String {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/command");
    format!(
        "[objective]\ndeadline = \"{deadline}\"\n\
         [scaling]\ninterval = \"1s\"\ntask_estimate = \"1s\"\n\
         [[resources]]\nname = \"private\"\nprovider = \"static\"\ncount = 1\n\
         [[resources]]\nname = \"lab\"\nprovider = \"command\"\nprice_per_hour = 36.0\n\
         boot_time = \"1s\"\nmax = {max}\nstart = \"sh {}\"\nstop = \"sh {}\"\n",
        fixtures.join(start).display(),
        fixtures.join("stop-worker.sh").display(),
    )
}
