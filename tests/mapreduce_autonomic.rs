//! `halley mapreduce` under the autonomic manager, with real worker
//! processes: 28 map tasks of a second each, one private slot and a 20 s
//! deadline that needs paid local machines. Every process of the test
//! carries a marker in its environment, so the test can check that none is
//! left.

mod run_util;

use std::collections::BTreeMap;
use std::time::Duration;

use run_util::{Scratch, assert_billed, assert_none_left, halley, run_marked};
use serde_json::Value;

/// $3.60 an hour: $0.001 a second.
const PRICE_PER_SECOND: f64 = 0.001;

const POLICY: &str = "[objective]\ndeadline = \"20s\"\n\
    [scaling]\ninterval = \"1s\"\n\
    [[resources]]\nname = \"private\"\nprovider = \"static\"\ncount = 1\n\
    [[resources]]\nname = \"paid\"\nprovider = \"local\"\nprice_per_hour = 3.6\n\
    boot_time = \"1s\"\nmax = 6\n";

#[test]
fn paid_machines_meet_a_mapreduce_deadline_and_are_released() {
    let dir = Scratch::new("mr-auto-deadline");
    let marker = format!("mr-deadline-{}", std::process::id());
    // One line a split: 4 splits a slot the policy may have (7) = 28.
    let mut text = String::new();
    let mut expected = BTreeMap::new();
    for i in 0..28 {
        let word = format!("w{}", i % 5);
        *expected.entry(word.clone()).or_insert(0u64) += 1;
        text.push_str(&format!("{word}\n"));
    }
    let input = dir.write("in.txt", &text);
    let policy = dir.write("policy.toml", POLICY);
    let out = dir.path("out");
    let mut command = halley();
    command
        .arg("mapreduce")
        .arg("--input")
        .arg(&input)
        .args(["--map", r#"sleep 1; awk '{ print $1 "\t1" }'"#])
        .args([
            "--reduce",
            r#"awk -F '\t' '{ c[$1] += $2 } END { for (k in c) print k "\t" c[k] }'"#,
        ])
        .args(["--reducers", "2"])
        .arg("--policy")
        .arg(&policy)
        .arg("--out")
        .arg(&out);
    let code = run_marked(&mut command, &dir, &marker, Duration::from_secs(180));
    let text = std::fs::read_to_string(out.join("_summary.json")).expect("_summary.json");
    let summary: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["deadline_met"], true);
    assert!(summary["error"].is_null());
    let mut got = BTreeMap::new();
    for r in 0..2 {
        for line in std::fs::read_to_string(out.join(format!("part-{r}")))
            .unwrap()
            .lines()
        {
            let (key, count) = line.split_once('\t').unwrap();
            got.insert(key.to_owned(), count.parse::<u64>().unwrap());
        }
    }
    assert_eq!(got, expected);
    let tasks = summary["tasks"].as_array().unwrap();
    let maps = tasks.iter().filter(|t| t["phase"] == "map").count();
    assert_eq!((maps, tasks.len()), (28, 30), "{summary}");
    let paid = tasks.iter().filter(|t| t["resource"] == "paid").count();
    assert!(paid > 0, "no task ran on the paid class");
    assert!(summary["cost"].as_f64().unwrap() > 0.0);
    assert_billed(&summary, "paid", PRICE_PER_SECOND);
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("_shuffle"))
        .collect();
    assert!(left.is_empty(), "the shuffle files were removed: {left:?}");
    assert_none_left(&marker);
}
