#!/usr/bin/env bash
# CPU flamegraph of a server under a scenario's load.
#   perf/flamegraph.sh <scenario> [server] [seconds]
# server: streamhub (default) or a peer. The server runs pinned to core 0 with one
# shard, the load on core 1; `perf record -e cpu-clock` (no hardware counters here) with
# DWARF call graphs samples the server only; inferno folds and draws it.
# Writes perf/flamegraphs/<scenario>-<server>.svg; frames under half a pixel wide are
# left out to keep the file small.
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh
scenario=${1:?usage: perf/flamegraph.sh <scenario> [server] [seconds]}
server=${2:-streamhub}
secs=${3:-10}

command -v inferno-flamegraph >/dev/null || cargo install inferno --locked
build
addr=127.0.0.1:$(free_port)
tmp=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; rm -rf "$tmp"' EXIT
taskset -c 0 $(server_cmd "$server" "$addr") >/dev/null 2>&1 &
srv=$!
wait_ready "$addr"

target/release/streamhub-bench "$scenario" --addr "$addr" --duration "$((secs + 3))s" --quiet \
  --load-core 1 --json "$tmp/load.json" >/dev/null &
load=$!
sleep 1
perf record -e cpu-clock -F 997 --call-graph dwarf,16384 -p "$srv" -o "$tmp/perf.data" -- sleep "$secs" 2>/dev/null
wait "$load"

out=perf/flamegraphs/$scenario-$server
perf script -i "$tmp/perf.data" 2>/dev/null | inferno-collapse-perf > "$tmp/stacks.folded"
rps=$(python3 -c "import json; print(round(json.load(open('$tmp/load.json'))['runs'][0]['rps']))")
inferno-flamegraph --minwidth 0.5 \
  --title "$scenario on $server: one core, $rps req/s closed-loop, cpu-clock $(date -u +%F)" \
  < "$tmp/stacks.folded" > "$out.svg"
echo "wrote $out.svg ($rps req/s during the profile)"
