#!/usr/bin/env bash
# Python workflows beside Rust ones, in one run on one release `weft server` (fresh SQLite):
# `weft bench` with the Rust hello-activity and with its Python port, at 1 and 100 in flight,
# alternating ROUNDS times. The 10-sequential-activities line is the Rust edge-cases fixture
# in both (it is there to keep the bench's shape; ignore it here).
# Usage: bench/python-workflows.sh [WEFT] [ROUNDS]   (default: target/release/weft, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
weft=${1:-target/release/weft} rounds=${2:-2}
rust=$(ls target/debug/build/weft-tests-*/out/guests/hello-activity.wasm | head -1)
fixtures=$(dirname "$rust")
python=guest-examples/python/hello-activity/build/hello-activity.wasm
[ -f "$python" ] || "$weft" build guest-examples/python/hello-activity >/dev/null
dir=$(mktemp -d)
"$weft" server --listen 127.0.0.1:7399 --database "sqlite:$dir/bench.db" \
  --compiled-cache "$dir/compiled" 2>/dev/null &
server=$!
trap 'kill -INT $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
sleep 1
bench() { # label component args...
  local label=$1 component=$2; shift 2
  "$weft" --server http://127.0.0.1:7399 bench --hello "$component" \
    --sequential "$fixtures/edge-cases.wasm" "$@" | grep hello-activity | sed "s/^/$label: /"
}
for round in $(seq "$rounds"); do
  for lang in rust python; do
    bench "round $round $lang c=1" "${!lang}" -n 300 -c 1
    bench "round $round $lang c=100" "${!lang}" -n 3000 -c 100
  done
done
