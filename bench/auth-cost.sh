#!/usr/bin/env bash
# What tokens cost: `weft bench` against a release `weft server` (SQLite) without and with --auth
# (an admin token), alternating, two rounds. Build first: cargo build --release -p weft.
set -euo pipefail
cd "$(dirname "$0")/.."
weft=target/release/weft
dir=$(mktemp -d)
for round in 1 2; do
  for config in auth-off auth-on; do
    rm -f "$dir"/bench.db*
    flags=()
    token=""
    if [ $config = auth-on ]; then
      token=$($weft token create --role admin --name bench --database "sqlite:$dir/bench.db")
      flags=(--auth)
    fi
    $weft server --listen 127.0.0.1:7399 --database "sqlite:$dir/bench.db" "${flags[@]}" 2>/dev/null &
    server=$!
    sleep 1
    WEFT_TOKEN=$token $weft --server http://127.0.0.1:7399 bench -n 3000 -c 100 | sed "s/^/round $round $config: /"
    kill -INT $server; wait $server 2>/dev/null || true
  done
done
