#!/usr/bin/env bash
# This checkout's build against another one's, alternating in one run, so that the noise
# of a shared machine falls on both alike.
#   perf/ab.sh <other checkout> [rounds] [duration]
# The other checkout (a `git worktree` of the parent commit, say) must have its release
# binaries built (`cargo build --release -p streamhub-server -p streamhub-bench`).
# Per round and build: closed-loop `gql-persisted` and `gql-mutation` throughput (the
# server on core 0, this checkout's load generator on core 1, 64 connections), then
# `ws-fanout --rate 200` (each checkout's own harness) for its server CPU per delivery.
# Prints each figure per round and the medians. SKIP_FANOUT=1 leaves out `ws-fanout`.
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh
other=$(cd "${1:?usage: perf/ab.sh <other checkout> [rounds] [duration]}" && pwd)
rounds=${2:-3}
duration=${3:-10s}
here=$(pwd)
build
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$tmp"' EXIT

# Server CPU microseconds per delivery of `ws-fanout --rate 200` with <dir>'s binaries.
fanout_cpu() {
  if ! (cd "$1" && target/release/streamhub-bench ws-fanout --rate 200 --duration "$duration" \
    --json "$tmp/f.json" >"$tmp/f.log" 2>&1); then
    cat "$tmp/f.log" >&2
    return 1
  fi
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r=r["runs"][0] if "runs" in r else r; print("%.3f" % r["server_cpu_us_per_delivery"])' "$tmp/f.json"
}

declare -A got
for r in $(seq 1 "$rounds"); do
  for side in this other; do
    dir=$here; [ "$side" = other ] && dir=$other
    p=$(http_rps "$dir" gql-persisted)
    m=$(http_rps "$dir" gql-mutation)
    f=${SKIP_FANOUT:+0}; [ -z "$f" ] && f=$(fanout_cpu "$dir")
    echo "round $r $side: gql-persisted $p req/s, gql-mutation $m req/s, ws-fanout $f µs CPU per delivery"
    got[$side-p]+="$p "; got[$side-m]+="$m "; got[$side-f]+="$f "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for side in this other; do
  echo "median $side: gql-persisted $(echo "${got[$side-p]}" | median) req/s," \
    "gql-mutation $(echo "${got[$side-m]}" | median) req/s," \
    "ws-fanout $(echo "${got[$side-f]}" | median) µs CPU per delivery"
done
