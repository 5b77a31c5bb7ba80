#!/usr/bin/env bash
# What observability costs: `weft bench` against `weft server` (release, SQLite) with metrics
# off, metrics on (the default), and metrics on + traces to a local OTLP sink that only counts.
# The three configurations alternate, ROUNDS times, in one run of this script, so drift on the
# machine hits all of them alike. Usage: bench/observability-cost.sh [ROUNDS] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
n=${2:-3000}
cargo build --release -q -p weft --bin weft
cargo build --release -q -p weft-telemetry --example otlp_sink
target/release/weft build guest-examples >/dev/null
weft=target/release/weft
sink_pid=
cleanup() {
  if [ -n "$sink_pid" ]; then kill -INT "$sink_pid" 2>/dev/null; wait "$sink_pid" || true; fi
}
trap cleanup EXIT
target/release/examples/otlp_sink 127.0.0.1:4317 &
sink_pid=$!
sleep 0.5
dir=$(mktemp -d)
for round in $(seq "$rounds"); do
  for config in metrics-off metrics-on traces-on; do
    case $config in
      metrics-off) flags=(--no-metrics) ;;
      metrics-on) flags=() ;;
      traces-on) flags=(--otlp-endpoint http://127.0.0.1:4317) ;;
    esac
    rm -f "$dir"/bench.db*
    $weft server --listen 127.0.0.1:7399 --database "sqlite:$dir/bench.db" "${flags[@]}" 2>/dev/null &
    server=$!
    sleep 1
    $weft --server http://127.0.0.1:7399 bench -n "$n" -c 100 | sed "s/^/round $round $config: /"
    kill -INT $server; wait $server 2>/dev/null || true
  done
done
