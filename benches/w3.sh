#!/bin/bash
# W3 (BENCHMARKS.md): word count of the 200 MB corpus on 2 cores, Halley's Rust
# MapReduce API (examples/wordcount.rs) and `halley mapreduce` (streaming,
# mawk map with in-mapper combining), beside the hand-written Rust reference
# when its binary is given; runs interleaved, 3 rounds, prints the medians.
#
#   python3 ../shared/peers/gen_corpus.py /tmp/corpus.txt
#   (cd ../shared/peers/rust && cargo build --release)   # or a copy of it
#   benches/w3.sh /tmp/corpus.txt [path/to/peers/rust/target/release/wc]
set -euo pipefail
corpus=${1:?usage: benches/w3.sh <corpus> [reference wc binary]}
reference=${2:-}
cd "$(dirname "$0")/.."
cargo build --release --quiet --example wordcount --bin halley
wordcount=target/release/examples/wordcount
halley=target/release/halley
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
map='mawk '"'"'{ for (i = 1; i <= NF; i++) c[$i]++ } END { for (w in c) print w "\t" c[w] }'"'"
reduce='mawk -F '"'"'\t'"'"' '"'"'{ c[$1] += $2 } END { for (w in c) print w "\t" c[w] }'"'"
cat "$corpus" > /dev/null
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
api=() ref=() streaming=()
for round in 1 2 3; do
  api+=("$($wordcount "$corpus" --workers 2 | sed -n 's/.*total_s=\([0-9.]*\).*/\1/p')")
  if [ -n "$reference" ]; then
    ref+=("$("$reference" "$corpus" 2 fx | sed -n 's/.*total_s=\([0-9.]*\).*/\1/p')")
  fi
  start=$(date +%s.%N)
  "$halley" mapreduce --input "$corpus" --map "$map" --reduce "$reduce" --workers 2 --out "$out/s"
  streaming+=("$(echo "$(date +%s.%N) - $start" | bc)")
done
mb=$(( $(stat -c %s "$corpus") / 1000000 ))
echo "W3 Rust API (2 workers):      median $(median "${api[@]}") s  runs: ${api[*]}  (${mb} MB)"
[ -n "$reference" ] && echo "W3 hand-written Rust (2 thr): median $(median "${ref[@]}") s  runs: ${ref[*]}"
[ -n "$reference" ] && echo "W3 ratio API / hand-written:  $(echo "scale=2; $(median "${api[@]}") / $(median "${ref[@]}")" | bc)"
echo "W3 halley mapreduce (mawk):   median $(median "${streaming[@]}") s  runs: ${streaming[*]}"
