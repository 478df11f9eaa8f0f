#!/usr/bin/env bash
# Instructions per operation, from valgrind's callgrind: stable on a noisy machine.
#   perf/callgrind.sh <scenario> [server] [operations] [load options...]
# Load options go to streamhub-bench (e.g. --header "Authorization: Bearer ...");
# the server inherits this environment (e.g. STREAMHUB_JWT_SECRET).
# The server runs under callgrind; after a warm-up the counters are zeroed, the load
# sends exactly <operations> requests (closed-loop, $CONNECTIONS connections, default 4), the counters are
# dumped, and total instructions / operations is printed with the top functions.
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh
scenario=${1:?usage: perf/callgrind.sh <scenario> [server] [operations]}
server=${2:-streamhub}
ops=${3:-20000}
shift $(( $# < 3 ? $# : 3 ))

build
addr=127.0.0.1:$(free_port)
tmp=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
valgrind --tool=callgrind ${CALLGRIND_OPTS:-} --trace-children=yes --callgrind-out-file="$tmp/cg.%p" --dump-instr=no \
  $(server_cmd "$server" "$addr") >/dev/null 2>"$tmp/valgrind.log" &
srv=$!
wait_ready "$addr" 120

extra=("$@")
load() {
  target/release/streamhub-bench "$scenario" --addr "$addr" --connections "${CONNECTIONS:-4}" \
    --requests "$1" --duration 600s --quiet --load-core 1 "${extra[@]}" >/dev/null
}
load 2000                      # warm-up: connections, caches, lazy initialisation
callgrind_control -z "$srv" >/dev/null
load "$ops"
callgrind_control -d "$srv" >/dev/null
sleep 1
dump=$(ls -t "$tmp"/cg.* | head -n 1)
total=$(grep -E '^(summary|totals):' "$dump" | head -n 1 | awk '{print $2}')
echo "$scenario on $server: $total instructions for $ops operations = $((total / ops)) per operation"
echo "top functions by own instructions (per operation):"
callgrind_annotate --inclusive=no --threshold=100 "$dump" 2>/dev/null \
  | sed -n '/file:function/,$p' | grep -E '^ *[0-9,]+ \(' | grep -vE '\((99\.[0-9]+|100\.0)%\)' | head -n 20 \
  | awk -v ops="$ops" '{ n=$1; gsub(",", "", n); $1=""; printf "%8d %s\n", n/ops, $0 }' | cut -c1-160  || true
