#!/usr/bin/env bash
# Two builds of `weft` side by side: `weft bench` (hello-activity at 1, 10 and 100 in flight,
# and 10 sequential activities at 100) against a release `weft server` on a fresh SQLite file,
# and hello-activity at 100 on a fresh PostgreSQL database; the builds alternate, ROUNDS times.
# Usage: bench/sync-match.sh OLD_WEFT NEW_WEFT [ROUNDS]
# (e.g. a release binary of the previous commit copied aside, and target/release/weft).
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 rounds=${3:-1}
# The guests in $WEFT_BENCH_COMPONENTS (an older build cannot load newer guests: give it the
# ones it built, and both builds run those), else the ones `weft build guest-examples` made,
# else the ones the test build made.
components=${WEFT_BENCH_COMPONENTS:-guest-examples/target/components}
[ -f "$components/edge-cases.wasm" ] ||
  components=$(dirname "$(ls target/debug/build/weft-tests-*/out/guests/hello-activity.wasm | head -1)")
dir=$(mktemp -d)
bench() { # binary label server-url args...
  local weft=$1 label=$2 url=$3; shift 3
  $weft --server "$url" bench --hello "$components/hello-activity.wasm" \
    --sequential "$components/edge-cases.wasm" "$@" | sed "s/^/$label: /"
}
for round in $(seq "$rounds"); do
  for build in old new; do
    weft=${!build}
    rm -f "$dir"/bench.db*
    $weft server --listen 127.0.0.1:7398 --database "sqlite:$dir/bench.db" 2>/dev/null &
    server=$!
    sleep 1
    bench "$weft" "round $round $build sqlite c=1" http://127.0.0.1:7398 -n 300 -c 1
    bench "$weft" "round $round $build sqlite c=10" http://127.0.0.1:7398 -n 2000 -c 10
    bench "$weft" "round $round $build sqlite c=100" http://127.0.0.1:7398 -n 3000 -c 100
    kill -INT $server; wait $server 2>/dev/null || true
    db="weft_bench_$$_${round}_${build}"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db"
    $weft server --listen 127.0.0.1:7398 --database "postgres://postgres@127.0.0.1:5432/$db" 2>/dev/null &
    server=$!
    sleep 1
    bench "$weft" "round $round $build postgres c=100" http://127.0.0.1:7398 -n 3000 -c 100
    kill -INT $server; wait $server 2>/dev/null || true
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $db WITH (FORCE)"
  done
done
rm -rf "$dir"
