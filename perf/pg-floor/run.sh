#!/usr/bin/env bash
# The floor under the channel page with the shard caches off: PostgreSQL alone, asked by
# pgbench for the statements the server sends for one page (page.sql: the login with
# its channel; then the four of level 2 in one pipeline; then the two of level 3 in one
# pipeline), at a fixed rate, no GraphQL server in between. Prints the latency
# percentiles of a page, to hold `gql-persisted` with STREAMHUB_CACHE_ENTRIES=0 against.
#   perf/pg-floor/run.sh <database url> [rate per second] [seconds]
# The database is one `streamhub seed` filled (the demo data: alice is u1, ch_u1).
# pgbench runs on core 1, as the bench's load does.
set -euo pipefail
url=${1:?usage: perf/pg-floor/run.sh <database url> [rate] [seconds]}
rate=${2:-480}
seconds=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
taskset -c 1 pgbench "$url" -n -M prepared -c 8 -j 1 -R "$rate" -T "$seconds" \
  -f "$here/page.sql" --log --log-prefix=page >pgbench.out 2>&1 || { cat pgbench.out >&2; exit 1; }
# Each log line: client, transaction, latency in µs, ...
cat page.* | awk '{print $3}' | sort -n | awk -v rate="$rate" '
  {a[NR] = $1}
  END {
    if (NR == 0) { print "no transactions" > "/dev/stderr"; exit 1 }
    printf "pgbench floor at %s/s: %d pages, p50 %d µs, p90 %d µs, p99 %d µs, p99.9 %d µs\n",
      rate, NR, a[int(NR * 0.5)], a[int(NR * 0.9)], a[int(NR * 0.99)], a[int(NR * 0.999)]
  }'
