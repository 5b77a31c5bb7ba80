#!/usr/bin/env bash
# How fast `weft vet` replays: N copies of each golden history (tests/histories) vetted on its
# own module, every core. Build first: cargo build --release -p weft.
# Usage: bench/vet-rate.sh [N]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
weft=target/release/weft
components=$($weft build guest-examples 2>/dev/null | head -1 | xargs dirname)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for example in hello-activity fan-out ml-pipeline saga timers-and-random approval; do
  mkdir -p "$dir/$example"
  for i in $(seq 1 "$n"); do cp tests/histories/$example.json "$dir/$example/$i.json"; done
  events=$(grep -c '"seq"' tests/histories/$example.json)
  printf '%-18s %3s events: ' "$example" "$events"
  $weft vet --histories "$dir/$example" --module "$components/$example.wasm" | tail -1
done
