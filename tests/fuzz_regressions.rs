//! The fuzzers' findings, on stable: every file of
//! `fuzz/regressions/<target>/` (inputs that once crashed a target, kept
//! after the fix, and a few seeds) goes to the same function its fuzz
//! target calls (`fuzz/src/lib.rs`), which must return: `Ok` or `Err` from
//! the decoder or parser, never a panic. `scripts/fuzz.sh` runs the
//! fuzzers themselves (nightly).

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

#[test]
fn every_input_the_fuzzers_found_is_handled_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for (target, feed) in harness::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no inputs in {}", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let fed = std::panic::catch_unwind(|| feed(&data));
            assert!(fed.is_ok(), "{target} panicked on {}", file.display());
        }
    }
}
