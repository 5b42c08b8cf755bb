#!/bin/bash
# Runs Halley's workloads W1–W4 (../shared/BENCHMARKS.md) and the store bench in
# one go and prints a table of the medians. Release builds; takes ~5 minutes.
#
#   benches/all.sh [corpus] [reference wc binary]
#
# W3 needs the 200 MB corpus: without one it is generated into /tmp/w3 with
# ../shared/peers/gen_corpus.py. The reference binary, when given, is the
# hand-written Rust word count of ../shared/peers/rust (for the W3 ratio).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-/tmp/w3/corpus.txt}
reference=${2:-}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
if [ ! -f "$corpus" ]; then
  mkdir -p "$(dirname "$corpus")"
  python3 ../shared/peers/gen_corpus.py "$corpus"
fi
cargo build --release --quiet --examples --bin halley
cargo run --release --quiet --example mw_bench -- w1 | tee "$log/w1"
cargo run --release --quiet --example mw_bench -- w2 | tee "$log/w2"
benches/w3.sh "$corpus" $reference | tee "$log/w3"
cargo bench --quiet --bench w4 | tee "$log/w4"
cargo bench --quiet --bench store -- 'pairs/' | tee "$log/store"
pick() { sed -n "$2" "$log/$1" | head -1; }
echo
echo "| workload | Halley (median) |"
echo "| --- | --- |"
echo "| W1 tasks/s, 2 worker processes | $(pick w1 's/^w1 median of [0-9]*: \([0-9.]*\)/\1/p') |"
echo "| W2 efficiency, 2 worker processes | $(pick w2 's/^w2 median of [0-9]*: \([0-9.]*\)/\1/p') |"
echo "| W3 Rust API, s | $(pick w3 's/^W3 Rust API.*median \([0-9.]*\) s.*/\1/p') |"
echo "| W3 ratio to hand-written Rust | $(pick w3 's/^W3 ratio.*: *\([0-9.]*\)/\1/p') |"
echo "| W3 halley mapreduce (streaming), s | $(pick w3 's/^W3 halley mapreduce.*median \([0-9.]*\) s.*/\1/p') |"
echo "| W4 round trip median / p99, µs | $(pick w4 's/^W4 round trip.*median \([0-9]*\) µs, p99 \([0-9]*\) µs.*/\1 \/ \2/p') |"
echo "| store out+in pair (criterion time) | $(pick store 's/^pairs\/[^ ]* *time: *\[[^ ]* [^ ]* \([^ ]* [^ ]*\) .*/\1/p') |"
