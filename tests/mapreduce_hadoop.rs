//! `halley mapreduce` speaks Hadoop streaming (issue 11): the classic
//! Python mapper and reducer, `cat`-style mappers whose lines have no tab
//! (a line without the separator is a key with an empty value),
//! `--separator` and `--key-fields`, `--retries` for a reducer that fails
//! once, no partial or stale `part-*`, `_SUCCESS`, and `halley verify` of
//! the parts.

mod run_util;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use run_util::Scratch;

fn halley(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_halley"))
        .args(args)
        .output()
        .expect("halley runs")
}

/// `halley mapreduce` of `input` into `out` with `extra` arguments.
fn mapreduce(input: &Path, map: &str, reduce: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["mapreduce", "--map", map, "--reduce", reduce];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(["--input", input.to_str().unwrap(), "--workers", "2"]);
    args.extend(extra);
    halley(&args)
}

fn check(run: &Output) {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Every `part-*` of `out`, by name.
fn parts(out: &Path) -> BTreeMap<String, String> {
    fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read_to_string(e.path()).unwrap())
        })
        .collect()
}

/// Counts as `sort | uniq -c` gives them, by line.
fn uniq_c(text: &str) -> BTreeMap<String, u64> {
    let output = Command::new("sh")
        .arg("-c")
        .arg("sort | uniq -c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    parse_uniq_c(&String::from_utf8(output.stdout).unwrap())
}

/// `uniq -c` lines: a count, one blank, the line.
fn parse_uniq_c(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let (count, key) = line.split_once(' ').unwrap_or((line, ""));
        let previous = counts.insert(key.to_owned(), count.parse().unwrap());
        assert_eq!(previous, None, "{key:?} counted in two places");
    }
    counts
}

/// A corpus of words, one or several a line, with blank lines.
fn corpus(dir: &Scratch) -> (std::path::PathBuf, String) {
    let mut text = String::new();
    for i in 0..2000 {
        match i % 7 {
            0 => text.push('\n'),
            _ => text.push_str(&format!("w{} v{} w{}\n", i % 13, i % 5, i % 3)),
        }
    }
    let path = dir.write("corpus.txt", &text);
    (path, text)
}

const PY_MAPPER: &str = "import sys\nfor line in sys.stdin:\n    for word in line.split():\n        print(f\"{word}\\t1\")\n";
const PY_REDUCER: &str = "import sys\ncurrent, count = None, 0\nfor line in sys.stdin:\n    word, n = line.rstrip(\"\\n\").split(\"\\t\", 1)\n    if word == current:\n        count += int(n)\n    else:\n        if current is not None:\n            print(f\"{current}\\t{count}\")\n        current, count = word, int(n)\nif current is not None:\n    print(f\"{current}\\t{count}\")\n";

#[test]
fn the_classic_python_word_count_matches_sort_uniq_c() {
    let has_python = Command::new("python3").arg("--version").output().is_ok();
    if !has_python {
        assert!(
            std::env::var("CI").is_err(),
            "python3 is missing in CI (.ci/run installs it)"
        );
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let dir = Scratch::new("mr-python");
    let (input, text) = corpus(&dir);
    let mapper = dir.write("mapper.py", PY_MAPPER);
    let reducer = dir.write("reducer.py", PY_REDUCER);
    let out = dir.path("out");
    let run = mapreduce(
        &input,
        &format!("python3 {}", mapper.display()),
        &format!("python3 {}", reducer.display()),
        &out,
        &["--reducers", "3"],
    );
    check(&run);
    let mut got = BTreeMap::new();
    for part in parts(&out).values() {
        for line in part.lines() {
            let (word, n) = line.split_once('\t').unwrap();
            assert_eq!(got.insert(word.to_owned(), n.parse::<u64>().unwrap()), None);
        }
    }
    let words: String = text.split_whitespace().map(|w| format!("{w}\n")).collect();
    assert_eq!(got, uniq_c(&words));
    assert!(out.join("_SUCCESS").exists());
    let verify = halley(&["verify", out.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
    fs::write(out.join("part-1"), "tampered\n").unwrap();
    let verify = halley(&["verify", out.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&verify.stdout), "changed part-1\n");
}

#[test]
fn a_cat_mapper_gives_the_counts_of_sort_uniq_c_blank_lines_included() {
    let dir = Scratch::new("mr-cat");
    let (input, text) = corpus(&dir);
    let out = dir.path("out");
    let run = mapreduce(&input, "cat", "uniq -c", &out, &["--reducers", "4"]);
    check(&run);
    let mut got = BTreeMap::new();
    for part in parts(&out).values() {
        for (key, count) in parse_uniq_c(part) {
            assert_eq!(got.insert(key.clone(), count), None, "{key:?} in two parts");
        }
    }
    assert_eq!(got, uniq_c(&text));
    assert!(got.contains_key(""), "blank lines are a key too");
}

#[test]
fn keys_are_the_first_fields_by_the_separator() {
    let dir = Scratch::new("mr-fields");
    let mut text = String::new();
    for i in 0..600 {
        text.push_str(&format!("k{},s{},{}\n", i % 7, i % 4, i));
    }
    let input = dir.write("rows.csv", &text);
    let out = dir.path("out");
    // The reducer prints the distinct keys (two fields) it was given.
    let run = mapreduce(
        &input,
        "cat",
        "cut -d, -f1,2 | uniq",
        &out,
        &["--reducers", "3", "--separator", ",", "--key-fields", "2"],
    );
    check(&run);
    let mut seen = BTreeMap::new();
    for (name, part) in parts(&out) {
        for key in part.lines() {
            let previous = seen.insert(key.to_owned(), name.clone());
            assert_eq!(previous, None, "{key} reached two reducers (or one twice)");
        }
    }
    assert_eq!(seen.len(), 28, "7 × 4 keys of two fields");
    let bad = mapreduce(&input, "cat", "cat", &out, &["--separator", "ab"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--separator"));
}

#[test]
fn a_reducer_that_fails_once_succeeds_on_retry() {
    let dir = Scratch::new("mr-retry");
    let (input, text) = corpus(&dir);
    let flag = dir.path("failed-once");
    let out = dir.path("out");
    let reduce = format!(
        "if [ -e {f} ]; then uniq -c; else touch {f}; echo half; exit 1; fi",
        f = flag.display()
    );
    let run = mapreduce(
        &input,
        "cat",
        &reduce,
        &out,
        &["--reducers", "1", "--retries", "2"],
    );
    check(&run);
    let parts = parts(&out);
    assert_eq!(parts.len(), 1);
    assert_eq!(parse_uniq_c(&parts["part-0"]), uniq_c(&text));
    assert!(out.join("_SUCCESS").exists());
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("_summary.json")).unwrap()).unwrap();
    let reduce = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["phase"] == "reduce")
        .unwrap();
    assert_eq!(reduce["attempts"], 2, "{summary}");
}

#[test]
fn no_stale_or_partial_parts_are_left() {
    let dir = Scratch::new("mr-stale");
    let (input, _) = corpus(&dir);
    let out = dir.path("out");
    check(&mapreduce(
        &input,
        "cat",
        "uniq -c",
        &out,
        &["--reducers", "4"],
    ));
    assert_eq!(parts(&out).len(), 4);
    check(&mapreduce(
        &input,
        "cat",
        "uniq -c",
        &out,
        &["--reducers", "2"],
    ));
    let names: Vec<String> = parts(&out).into_keys().collect();
    assert_eq!(
        names,
        ["part-0", "part-1"],
        "the earlier part-2 and part-3 are gone"
    );
    // The reducer of the partition holding w7 fails: no part is kept.
    let failing = mapreduce(
        &input,
        "cat",
        "awk '/w7/ { bad = 1 } { print } END { exit bad }'",
        &out,
        &["--reducers", "3"],
    );
    assert_eq!(failing.status.code(), Some(1));
    assert!(parts(&out).is_empty(), "{:?}", parts(&out));
    assert!(!out.join("_SUCCESS").exists());
    let leftovers: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
