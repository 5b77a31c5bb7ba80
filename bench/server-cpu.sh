#!/usr/bin/env bash
# What one workload costs the server, for builds side by side: `weft bench` (hello-activity and
# 10 sequential activities, 100 in flight) against a release `weft server` on a fresh SQLite
# file or PostgreSQL database, then the server's CPU seconds (/proc/PID/stat) and its time in
# commits (weft_commit_duration_seconds from /metrics). The builds alternate, ROUNDS times.
# Usage: bench/server-cpu.sh sqlite|postgres ROUNDS WEFT...
# (e.g. bench/server-cpu.sh postgres 2 /tmp/weft-old target/release/weft)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ] || { [ "$1" != sqlite ] && [ "$1" != postgres ]; }; then
  echo "usage: bench/server-cpu.sh sqlite|postgres ROUNDS WEFT... (release weft binaries to compare)" >&2
  exit 2
fi
backend=$1 rounds=$2; shift 2
# As in sync-match.sh: $WEFT_BENCH_COMPONENTS, else `weft build guest-examples`, else the test build.
components=${WEFT_BENCH_COMPONENTS:-guest-examples/target/components}
[ -f "$components/edge-cases.wasm" ] ||
  components=$(dirname "$(ls target/debug/build/weft-tests-*/out/guests/hello-activity.wasm | head -1)")
n=6000; [ "$backend" = postgres ] && n=3000
dir=$(mktemp -d)
for round in $(seq "$rounds"); do
  for weft in "$@"; do
    case $backend in
      sqlite) database="sqlite:$dir/bench.db"; rm -f "$dir"/bench.db* ;;
      postgres)
        db="weft_cpu_$$_$round"
        psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db"
        database="postgres://postgres@127.0.0.1:5432/$db" ;;
    esac
    $weft server --listen 127.0.0.1:7398 --http 127.0.0.1:7399 --database "$database" 2>/dev/null &
    server=$!
    sleep 1
    out=$($weft --server http://127.0.0.1:7398 bench --hello "$components/hello-activity.wasm" \
      --sequential "$components/edge-cases.wasm" -n $n -c 100)
    cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$server/stat")
    metrics=$(curl -s 127.0.0.1:7399/metrics)
    kill -INT $server; wait $server 2>/dev/null || true
    [ "$backend" = postgres ] && psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $db WITH (FORCE)"
    rates=$(echo "$out" | sed -n 's/.*in flight: \([0-9]*\) workflows.*/\1/p' | paste -sd/)
    commit=$(echo "$metrics" | awk '/^weft_commit_duration_seconds_sum/ {printf "%.2f", $2}')
    batches=$(echo "$metrics" | awk '/^weft_commit_duration_seconds_count/ {print $2}')
    echo "round $round $weft: hello/sequential $rates workflows/s; server CPU ${cpu} s; commits ${commit} s in ${batches} batches"
  done
done
rm -rf "$dir"
