#!/bin/sh
# Runs each cargo-fuzz target of fuzz/ for a bounded time (nightly Rust and
# cargo-fuzz: `cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Default: 60 seconds each, every target (wire_frame, peer_message, syntax,
# policy, gate, records, overlay). Each starts from its committed inputs in fuzz/regressions/<target>/
# plus what earlier runs left in fuzz/corpus/<target>/ (not committed). A
# crash stops that target, and its input lands in fuzz/artifacts/<target>/:
# fix the bug, then copy the input into fuzz/regressions/<target>/ so the
# stable test tests/fuzz_regressions.rs keeps feeding it. Exits 1 when any
# target crashed.
set -eu
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-wire_frame peer_message syntax policy gate records overlay}
cd "$(dirname "$0")/../fuzz"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: needs nightly Rust and cargo-fuzz (cargo install cargo-fuzz)" >&2
  exit 2
fi
failed=""
for target in $targets; do
  mkdir -p "corpus/$target"
  echo "== $target: $seconds s" >&2
  # -O: optimised with debug assertions; rss and input bounds keep a run
  # within the machine.
  if ! cargo +nightly fuzz run -O "$target" "corpus/$target" "regressions/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1; then
    failed="$failed $target"
  fi
done
if [ -n "$failed" ]; then
  echo "fuzz.sh: crashed:$failed (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz.sh: no crash in$(printf ' %s' $targets), $seconds s each" >&2
