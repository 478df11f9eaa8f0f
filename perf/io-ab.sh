#!/usr/bin/env bash
# The two IO backends against each other, alternating in one run, so that the noise of
# a shared machine falls on both alike.
#   perf/io-ab.sh [rounds] [duration]
# Per round and backend (`STREAMHUB_IO=epoll`, then `uring`): closed-loop `http-static`
# and `gql-persisted` throughput (the server on core 0, the load generator on core 1,
# 64 connections), `ws-fanout --rate 200` server CPU per delivery, and `ws-idle` bytes
# per idle connection at 15,000. Prints each figure per round and the medians.
# SKIP_IDLE=1 leaves out `ws-idle`.
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh
rounds=${1:-3}
duration=${2:-5s}
build
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$tmp"' EXIT

# A field of the first run of a bench's JSON result.
field() {
  python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["runs"][0][sys.argv[2]])' "$1" "$2"
}

declare -A got
for r in $(seq 1 "$rounds"); do
  for io in epoll uring; do
    export STREAMHUB_IO=$io
    s=$(http_rps . http-static)
    p=$(http_rps . gql-persisted)
    target/release/streamhub-bench ws-fanout --rate 200 --duration "$duration" \
      --json "$tmp/f.json" >"$tmp/f.log" 2>&1 || { cat "$tmp/f.log" >&2; exit 1; }
    f=$(field "$tmp/f.json" server_cpu_us_per_delivery)
    i=0
    if [ -z "${SKIP_IDLE:-}" ]; then
      target/release/streamhub-bench ws-idle --json "$tmp/i.json" >"$tmp/i.log" 2>&1 \
        || { cat "$tmp/i.log" >&2; exit 1; }
      i=$(field "$tmp/i.json" bytes_per_connection)
    fi
    echo "round $r $io: http-static $s req/s, gql-persisted $p req/s, ws-fanout $f µs CPU per delivery, ws-idle $i bytes per connection"
    got[$io-s]+="$s "; got[$io-p]+="$p "; got[$io-f]+="$f "; got[$io-i]+="$i "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for io in epoll uring; do
  echo "median $io: http-static $(echo "${got[$io-s]}" | median) req/s," \
    "gql-persisted $(echo "${got[$io-p]}" | median) req/s," \
    "ws-fanout $(echo "${got[$io-f]}" | median) µs CPU per delivery," \
    "ws-idle $(echo "${got[$io-i]}" | median) bytes per connection"
done
