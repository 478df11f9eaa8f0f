# Shared by the perf scripts: build, pick a port, start a server pinned to a core, wait
# until it serves. Sourced, not run.

# The token secret of bench/src/scenario.rs (BENCH_SECRET).
BENCH_SECRET=streamhub-bench-secret-0123456789abcdef

# Builds the release binaries once.
build() {
  cargo build --release -q -p streamhub-server -p streamhub-bench
}

# A free loopback port.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Command line of a server under test: `server_cmd <name> <addr>`.
server_cmd() {
  case "$1" in
    # The same settings as the bench's (bench/src/scenario.rs): no rate limits unless
    # the environment sets them (to measure their cost), the bench's token secret.
    streamhub) echo "env STREAMHUB_LISTEN=$2 STREAMHUB_SHARDS=1 STREAMHUB_LOG=warn STREAMHUB_JWT_SECRET=$BENCH_SECRET STREAMHUB_RATE_QUERY=${STREAMHUB_RATE_QUERY:-off} STREAMHUB_RATE_MUTATION=${STREAMHUB_RATE_MUTATION:-off} STREAMHUB_RATE_CHAT=${STREAMHUB_RATE_CHAT:-off} STREAMHUB_MAX_CONNECTIONS_PER_IP=${STREAMHUB_MAX_CONNECTIONS_PER_IP:-0} target/release/streamhub" ;;
    axum) echo "target/release/peer-axum --listen $2" ;;
    async-graphql) echo "env PEER_JWT_SECRET=$BENCH_SECRET target/release/peer-async-graphql --listen $2" ;;
    *) echo "unknown server $1 (streamhub, axum, async-graphql)" >&2; return 1 ;;
  esac
}

# Closed-loop throughput (req/s) of `http_rps <dir> <scenario>` against the server built in
# <dir>: the server on core 0, the load generator on core 1. Uses the caller's $tmp and
# $duration, and keeps the server's pid in $srv while it runs (for the caller's trap).
http_rps() {
  local dir=$1 scenario=$2 addr
  addr=127.0.0.1:$(free_port)
  (cd "$dir" && exec taskset -c 0 $(server_cmd streamhub "$addr")) >/dev/null 2>&1 &
  srv=$!
  wait_ready "$addr" 30
  target/release/streamhub-bench "$scenario" --addr "$addr" --duration "$duration" \
    --load-core 1 --quiet --json "$tmp/r.json" >/dev/null
  kill "$srv"; wait "$srv" 2>/dev/null || true; srv=
  python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["runs"][0]["rps"]))' "$tmp/r.json"
}

# Waits until `GET /healthz` on $1 answers 200, up to $2 seconds.
wait_ready() {
  local addr=$1 patience=${2:-30}
  for _ in $(seq 1 $((patience * 10))); do
    if curl -fs "http://$addr/healthz" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "server at $addr did not become ready" >&2
  return 1
}
