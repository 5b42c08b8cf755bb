//! `halley policy check` and `halley simulate` as users run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn halley(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_halley"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("halley runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("halley-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn policy_check_accepts_every_example() {
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap()
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = halley(&["policy", "check", path.to_str().unwrap()]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
            assert_eq!(text(&out.stdout), "ok\n");
        }
    }
}

#[test]
fn policy_check_names_line_and_field_and_exits_2() {
    let path = scratch(
        "weekly.toml",
        "[[resources]]\nname = \"cloud\"\nprovider = \"local\"\nmax = 2\nbilling = \"weekly\"\n",
    );
    let out = halley(&["policy", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("weekly.toml:5:11: resources[0].billing: expected \"per-second\" or \"per-hour\", found \"weekly\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn policy_check_of_a_missing_file_exits_2() {
    let out = halley(&["policy", "check", "no/such/policy.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such/policy.toml"));
}
