//! `halley workflow` end to end: stage order, MapReduce stages, and the
//! errors that stop a workflow before anything runs.

mod run_util;

use run_util::Scratch;

use std::fs;
use std::process::{Command, Output};

/// Writes `text` as a workflow file in `tmp` and runs it with `--out tmp/out`.
fn workflow(tmp: &Scratch, text: &str) -> Output {
    let file = tmp.0.join("wf.toml");
    fs::write(&file, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_halley"))
        .args(["workflow", file.to_str().unwrap(), "--out"])
        .arg(tmp.0.join("out"))
        .output()
        .expect("halley runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn each_stage_sees_its_parents_outputs() {
    let tmp = Scratch::new("wf-order");
    let run = workflow(
        &tmp,
        r#"
        # Each stage copies what its parents left and adds its own line:
        # the final file shows every stage ran after its parents.
        [stages.first]
        commands = ["sleep 0.2; echo first > first.txt"]

        [stages.left]
        after = ["first"]
        commands = ["cat first.txt > left.txt && echo left >> left.txt"]

        [stages.right]
        after = ["first"]
        commands = ["cat first.txt > right.txt && echo right >> right.txt"]

        [stages.words]
        after = ["left", "right"]
        deadline = "10m"
        mapreduce = { input = ["left.txt", "right.txt"], reducers = 2, map = '''awk '{ print $1 "\t1" }' ''', reduce = '''awk -F '\t' '{ c[$1] += $2 } END { for (k in c) print k "=" c[k] }' ''' }

        [stages.last]
        after = ["words"]
        commands = ["cat words/part-* | sort > last.txt", "echo $HALLEY_STAGE > stage.txt"]
        "#,
    );
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let out = tmp.0.join("out");
    assert_eq!(
        fs::read_to_string(out.join("left.txt")).unwrap(),
        "first\nleft\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("right.txt")).unwrap(),
        "first\nright\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("last.txt")).unwrap(),
        "first=2\nleft=1\nright=1\n"
    );
    assert_eq!(fs::read_to_string(out.join("stage.txt")).unwrap(), "last\n");
    assert!(out.join("last/tasks/0.out").exists());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("stage words: succeeded"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("workflow.json")).unwrap()).unwrap();
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 5);
    assert!(
        stages.iter().all(|s| s["status"] == "succeeded"),
        "{report}"
    );
    let words = stages.iter().find(|s| s["name"] == "words").unwrap();
    assert_eq!(words["deadline_met"], true);
    // The MapReduce stage's tasks ran on the workers: its maps, then one
    // task per reducer; its shuffle files are gone.
    let tasks = report["tasks"].as_array().unwrap();
    let phase = |p: &str| {
        tasks
            .iter()
            .filter(|t| t["stage"] == "words" && t["phase"] == p)
            .count()
    };
    assert!(phase("map") >= 2, "{report}");
    assert_eq!(phase("reduce"), 2, "{report}");
    let mut names: Vec<String> = fs::read_dir(out.join("words"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["part-0", "part-1"]);
}

#[test]
fn a_failed_stage_skips_its_descendants_and_exits_1() {
    let tmp = Scratch::new("wf-fail");
    let run = workflow(
        &tmp,
        r#"
        [stages.bad]
        commands = ["true", "echo broken >&2; exit 4"]
        [stages.after_bad]
        after = ["bad"]
        commands = ["touch should-not-exist"]
        [stages.independent]
        commands = ["touch independent"]
        "#,
    );
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let out = tmp.0.join("out");
    assert!(!out.join("should-not-exist").exists());
    assert!(out.join("independent").exists());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("stage bad: failed"), "{stdout}");
    assert!(
        stdout.contains("command 1 `echo broken >&2; exit 4` failed"),
        "{stdout}"
    );
    assert!(stdout.contains("stage after_bad: skipped"), "{stdout}");
    assert_eq!(
        fs::read_to_string(out.join("bad/tasks/1.err")).unwrap(),
        "broken\n"
    );
}

#[test]
fn a_cycle_is_refused_before_anything_runs() {
    let tmp = Scratch::new("wf-cycle");
    let run = workflow(
        &tmp,
        r#"
        [stages.free]
        commands = ["touch ran"]
        [stages.a]
        after = ["b"]
        commands = ["true"]
        [stages.b]
        after = ["a"]
        commands = ["true"]
        "#,
    );
    assert_eq!(run.status.code(), Some(2));
    let err = stderr(&run);
    assert!(
        err.contains("wf.toml: stages `a`, `b` depend on each other"),
        "{err}"
    );
    assert!(!tmp.0.join("out").exists(), "nothing ran");
}

#[test]
fn a_missing_stage_is_refused_before_anything_runs() {
    let tmp = Scratch::new("wf-missing");
    let run = workflow(
        &tmp,
        "[stages.a]\ncommands = [\"touch ran\"]\n[stages.b]\nafter = [\"c\"]\ncommands = [\"true\"]\n",
    );
    assert_eq!(run.status.code(), Some(2));
    let err = stderr(&run);
    assert!(
        err.contains("wf.toml: stage `b`: `after` names `c`, which is not a stage"),
        "{err}"
    );
    assert!(!tmp.0.join("out").exists(), "nothing ran");
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let tmp = Scratch::new("wf-unknown");
    let run = workflow(
        &tmp,
        "[stages.a]\ncommands = [\"true\"]\ndeadlin = \"5m\"\n",
    );
    assert_eq!(run.status.code(), Some(2));
    let err = stderr(&run);
    assert!(err.contains("wf.toml") && err.contains("line 3"), "{err}");
    assert!(err.contains("unknown field `deadlin`"), "{err}");
}

#[test]
fn a_bag_stage_runs_its_commands_at_once() {
    let tmp = Scratch::new("wf-bag");
    let file = tmp.0.join("wf.toml");
    // Each command waits for the other's file: they finish only if both run
    // at the same time (and fail after 10 s otherwise, not hang).
    fs::write(
        &file,
        r#"
        [stages.pair]
        commands = [
          "touch a; timeout 10 sh -c 'until [ -e b ]; do sleep 0.05; done'",
          "touch b; timeout 10 sh -c 'until [ -e a ]; do sleep 0.05; done'",
        ]
        "#,
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_halley"))
        .args(["workflow", file.to_str().unwrap(), "--slots", "2", "--out"])
        .arg(tmp.0.join("out"))
        .output()
        .expect("halley runs");
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("stage pair: succeeded"), "{stdout}");
}

/// Runs `wf` with `--policy` holding `policy`, in `tmp`.
fn workflow_with_policy(tmp: &Scratch, wf: &str, policy: &str) -> Output {
    let file = tmp.write("wf.toml", wf);
    let policy = tmp.write("policy.toml", policy);
    Command::new(env!("CARGO_BIN_EXE_halley"))
        .arg("workflow")
        .arg(&file)
        .arg("--policy")
        .arg(&policy)
        .arg("--out")
        .arg(tmp.path("out"))
        .output()
        .expect("halley runs")
}

#[test]
fn a_missed_policy_deadline_exits_1_though_every_stage_succeeded() {
    let tmp = Scratch::new("wf-late");
    let run = workflow_with_policy(
        &tmp,
        "[stages.slow]\ncommands = [\"sleep 2\"]\n",
        "[objective]\ndeadline = \"1s\"\n\
         [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 1\n",
    );
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(tmp.path("out/workflow.json")).unwrap()).unwrap();
    assert_eq!(report["stages"][0]["status"], "succeeded", "{report}");
    assert_eq!(report["deadline_met"], false);
    assert_eq!(report["cost"], 0.0);
    assert_eq!(report["tasks"][0]["resource"], "campus");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("(deadline missed)"), "{stdout}");
}

#[test]
fn an_invalid_policy_is_refused_before_anything_runs() {
    let tmp = Scratch::new("wf-bad-policy");
    let run = workflow_with_policy(
        &tmp,
        "[stages.a]\ncommands = [\"touch ran\"]\n",
        "[[resources]]\nname = \"cloud\"\nprovider = \"local\"\nprice_per_hour = -1.0\n",
    );
    assert_eq!(run.status.code(), Some(2));
    let err = stderr(&run);
    assert!(
        err.contains("policy.toml") && err.contains("resources[0].price_per_hour"),
        "{err}"
    );
    assert!(!tmp.path("out").exists(), "nothing ran");
}
