//! `halley mapreduce --store s3://…` against a real S3 server (SeaweedFS's
//! `weed mini`, started and stopped by the test): workers that share no
//! directory with the submitter — they run elsewhere, and the job's data
//! reaches them only through the store — give the same word count as
//! `sort | uniq -c`. The server: [`s3_util`].

mod common;
mod run_util;
mod s3_util;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::Node;
use run_util::{Guard, Scratch, halley};
use s3_util::{S3, start_weed, weed};

const MAP: &str = r#"tr -s ' ' '\n' | awk 'NF { print $0 "\t1" }'"#;
const REDUCE: &str = r#"awk -F '\t' '{ c[$1] += $2 } END { for (w in c) print w "\t" c[w] }'"#;
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
    assert_eq!(
        names,
        ["_SUCCESS", "_summary.json", "part-0", "part-1", "part-2"]
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["error"], serde_json::Value::Null, "{summary}");
    // The parts fetched from the store are checked in like local ones.
    let files = summary["files"].as_object().expect("files");
    assert_eq!(files.len(), 3, "{summary}");
    let verified = halley().arg("verify").arg(&out).output().unwrap();
    assert!(verified.status.success(), "{verified:?}");
}
