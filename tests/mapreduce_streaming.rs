//! `halley mapreduce` end to end: real map and reduce processes.

mod run_util;

use run_util::Scratch;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MAP: &str = r#"tr -s ' ' '\n' | awk 'NF { print $0 "\t1" }'"#;
/// Relies on its input being sorted by key: prints a key when it changes.
const REDUCE: &str = r#"awk -F '\t' '$1 != k { if (NR > 1) print k "\t" c; k = $1; c = 0 } { c += $2 } END { if (NR > 0) print k "\t" c }'"#;

fn halley(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_halley"))
        .args(args)
        .output()
        .expect("halley runs")
}

/// `halley mapreduce` over `inputs` into `out`, with `extra` arguments.
fn mapreduce(inputs: &[&Path], map: &str, reduce: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["mapreduce", "--map", map, "--reduce", reduce];
    args.extend(["--out", out.to_str().unwrap(), "--input"]);
    args.extend(inputs.iter().map(|i| i.to_str().unwrap()));
    args.extend(extra);
    halley(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn corpus(dir: &Path) -> (PathBuf, PathBuf, BTreeMap<String, u64>) {
    let texts = dir.join("texts");
    fs::create_dir_all(&texts).unwrap();
    let mut expected = BTreeMap::new();
    let mut write = |path: PathBuf, lines: usize, salt: usize| {
        let mut text = String::new();
        for i in 0..lines {
            let line = format!("w{} x{}  w{}\n", i % 17, (i * salt) % 5, i % 3);
            for w in line.split_whitespace() {
                *expected.entry(w.to_owned()).or_insert(0) += 1;
            }
            text.push_str(&line);
        }
        fs::write(path, text).unwrap();
    };
    write(texts.join("a.txt"), 3000, 7);
    write(texts.join("b.txt"), 1000, 3);
    let single = dir.join("c.txt");
    write(single.clone(), 10, 1);
    (texts, single, expected)
}

#[test]
fn word_count_with_shell_commands_is_exact_and_partitioned() {
    let tmp = Scratch::new("mr-wc");
    let (texts, single, expected) = corpus(&tmp.0);
    let out = tmp.0.join("out");
    let run = mapreduce(
        &[&texts, &single],
        MAP,
        REDUCE,
        &out,
        &["--reducers", "3", "--workers", "2"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let mut got = BTreeMap::new();
    for r in 0..3 {
        let part = fs::read_to_string(out.join(format!("part-{r}"))).unwrap();
        let keys: Vec<&str> = part
            .lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "reducer {r} saw its input sorted by key");
        for line in part.lines() {
            let (key, count) = line.split_once('\t').unwrap();
            let previous = got.insert(key.to_owned(), count.parse::<u64>().unwrap());
            assert_eq!(previous, None, "{key} is in one partition only");
        }
    }
    assert!(!out.join("part-3").exists());
    assert_eq!(got, expected);
    // Besides the parts: the summary, _SUCCESS, and no shuffle files left.
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["_SUCCESS", "_summary.json", "part-0", "part-1", "part-2"]
    );
}

#[test]
fn a_failing_map_command_is_reported_with_its_status_and_stderr() {
    let tmp = Scratch::new("mr-mapfail");
    let input = tmp.0.join("in.txt");
    fs::write(&input, "a b c\n").unwrap();
    let run = mapreduce(
        &[&input],
        "echo cannot map >&2; exit 3",
        "cat",
        &tmp.0.join("out"),
        &[],
    );
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("map command `echo cannot map >&2; exit 3`"),
        "{err}"
    );
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("cannot map"), "{err}");
    let out = tmp.0.join("out");
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("_summary.json")).unwrap()).unwrap();
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .starts_with("map task 0 failed: map command"),
        "{summary}"
    );
    let shuffled = fs::read_dir(&out).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("_shuffle")
    });
    assert!(!shuffled, "the shuffle files were removed");
}

#[test]
fn a_failing_reduce_command_names_its_partition() {
    let tmp = Scratch::new("mr-redfail");
    let input = tmp.0.join("in.txt");
    fs::write(&input, "a b c\n").unwrap();
    let run = mapreduce(
        &[&input],
        MAP,
        "false",
        &tmp.0.join("out"),
        &["--reducers", "1"],
    );
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("reduce command `false` on partition 0 failed"),
        "{err}"
    );
}

#[test]
fn a_missing_input_is_bad_input() {
    let tmp = Scratch::new("mr-missing");
    let missing = tmp.0.join("nope.txt");
    let run = mapreduce(&[&missing], MAP, "cat", &tmp.0.join("out"), &[]);
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("nope.txt"), "{}", stderr(&run));
}

#[test]
fn a_policy_is_checked_before_anything_runs() {
    let tmp = Scratch::new("mr-policy");
    let input = tmp.0.join("in.txt");
    fs::write(&input, "b a b\n").unwrap();
    let good = tmp.0.join("good.toml");
    fs::write(
        &good,
        "[[resources]]\nname = \"here\"\nprovider = \"static\"\ncount = 1\nslots = 1\n",
    )
    .unwrap();
    let bad = tmp.0.join("bad.toml");
    fs::write(&bad, "[objective]\nbudgett = 1.0\n").unwrap();
    let out = tmp.0.join("out");
    let run_with = |policy: &Path| {
        mapreduce(
            &[&input],
            MAP,
            REDUCE,
            &out,
            &["--reducers", "1", "--policy", policy.to_str().unwrap()],
        )
    };
    let run = run_with(&bad);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("bad.toml"), "{}", stderr(&run));
    assert!(!out.join("part-0").exists(), "nothing ran");
    let run = run_with(&good);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        fs::read_to_string(out.join("part-0")).unwrap(),
        "a\t1\nb\t2\n"
    );
}

#[test]
fn with_peer_the_tasks_go_through_that_node_space() {
    use halley_substrate::{EmbeddedSpace, Node, Space, Subscription};
    let tmp = Scratch::new("mr-peer");
    let (texts, _, _) = corpus(&tmp.0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (space, node, mut done) = rt.block_on(async {
        let space = EmbeddedSpace::new();
        let node = Node::start("/ip4/127.0.0.1/tcp/0".parse().unwrap(), space.clone())
            .await
            .unwrap();
        // Every batch of results a worker puts.
        let done = halley_paradigms::results::template(None);
        let done = space.subscribe(done).await.unwrap();
        (space, node, done)
    });
    let out = tmp.0.join("out");
    let run = mapreduce(
        &[&texts],
        MAP,
        REDUCE,
        &out,
        &["--peer", &node.address().to_string(), "--reducers", "2"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let mut got = BTreeMap::new();
    for r in 0..2 {
        for line in fs::read_to_string(out.join(format!("part-{r}")))
            .unwrap()
            .lines()
        {
            let (key, count) = line.split_once('\t').unwrap();
            got.insert(key.to_owned(), count.parse::<u64>().unwrap());
        }
    }
    let mut results = 0;
    rt.block_on(async {
        let wait = std::time::Duration::from_millis(200);
        while let Ok(Some(packed)) = tokio::time::timeout(wait, done.next()).await {
            results += halley_paradigms::results::unpack(packed).unwrap().len();
        }
    });
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("_summary.json")).unwrap()).unwrap();
    let tasks = summary["tasks"].as_array().unwrap();
    let reduces = tasks.iter().filter(|t| t["phase"] == "reduce").count();
    assert_eq!(reduces, 2, "{summary}");
    assert_eq!(results, tasks.len(), "every result went through the node");
    let chunks = halley_paradigms::chunks::template(None);
    let left = rt.block_on(space.scan(chunks, None));
    assert!(left.unwrap().is_empty(), "every task tuple was taken");
    rt.block_on(node.stop());
    // c.txt is not part of this input: count the words of texts/ only.
    let mut expected = BTreeMap::new();
    for file in ["a.txt", "b.txt"] {
        for word in fs::read_to_string(texts.join(file))
            .unwrap()
            .split_whitespace()
        {
            *expected.entry(word.to_owned()).or_insert(0) += 1;
        }
    }
    assert_eq!(got, expected);
}
