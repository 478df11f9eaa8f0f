#!/usr/bin/env bash
# Redis Cluster pub/sub, classic against sharded: the Redis CPU (all three masters
# summed) per message published to a room's channel and delivered to two subscriber
# connections (two nodes' links), on a three-master cluster this script makes on
# ports 27101-27103. Classic: published at the master owning the room's slot (as the
# room scripts do), subscribed at another master (where every node's link is
# anchored); sharded: SPUBLISH and SSUBSCRIBE at the owning master.
# Usage: perf/redis-pubsub.sh [messages] [payload bytes]
set -euo pipefail
N=${1:-200000}
SIZE=${2:-200}
DIR=$(mktemp -d)
PORTS=(27101 27102 27103)
cleanup() {
  for p in "${PORTS[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  pkill -f "redis-cli -p 271" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
for p in "${PORTS[@]}"; do
  mkdir -p "$DIR/$p"
  (cd "$DIR/$p" && redis-server --port "$p" --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout 2000 --save '' --appendonly no --daemonize yes --logfile redis.log)
done
sleep 0.5
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${PORTS[@]}") --cluster-replicas 0 --cluster-yes >/dev/null
until [ "$(redis-cli -p 27101 cluster info | tr -d '\r' | grep cluster_state)" = "cluster_state:ok" ]; do sleep 0.2; done
CH='sh:{ch_u1}'
owner=$(redis-cli -p 27101 cluster keyslot "$CH" | tr -d '\r')
port_of_slot() {
  redis-cli -p 27101 cluster slots | tr -d '\r' | awk -v s="$1" '
    NR%1==0 { a[NR]=$0 } END {
      for (i=1; i<=NR; i++) if (a[i] ~ /^[0-9]+$/ && a[i+1] ~ /^[0-9]+$/ && a[i]+0<=s && s<=a[i+1]+0) { print a[i+3]; exit } }'
}
OWN=$(port_of_slot "$owner")
OTHER=$(for p in "${PORTS[@]}"; do [ "$p" != "$OWN" ] && echo "$p"; done | head -1)
cpu() { # total utime+stime ticks of the three redis-servers
  local t=0
  for p in "${PORTS[@]}"; do
    pid=$(redis-cli -p "$p" info server | tr -d '\r' | awk -F: '/^process_id/{print $2}')
    t=$((t + $(awk '{print $14+$15}' /proc/$pid/stat)))
  done
  echo $t
}
payload=$(head -c "$SIZE" /dev/zero | tr '\0' x)
run() { # name subscribe-port subscribe-cmd publish-port publish-cmd
  local name=$1 sp=$2 sc=$3 pp=$4 pc=$5
  redis-cli -p "$sp" "$sc" "$CH" >/dev/null & s1=$!
  redis-cli -p "$sp" "$sc" "$CH" >/dev/null & s2=$!
  sleep 0.5
  local before=$(cpu) t0=$(date +%s.%N)
  redis-benchmark -p "$pp" -n "$N" -c 4 -P 16 -q "$pc" "$CH" "$payload" >/dev/null
  sleep 0.5
  local after=$(cpu) t1=$(date +%s.%N)
  kill $s1 $s2; wait $s1 $s2 2>/dev/null || true
  local hz=$(getconf CLK_TCK)
  echo "$name: $(( (after - before) * 1000000000 / hz / N )) ns of Redis CPU per message ($N messages of $SIZE bytes, 2 subscribers)"
}
for round in 1 2 3; do
  run "classic (PUBLISH at :$OWN, SUBSCRIBE at :$OTHER)" "$OTHER" SUBSCRIBE "$OWN" PUBLISH
  run "sharded (SPUBLISH and SSUBSCRIBE at :$OWN)" "$OWN" SSUBSCRIBE "$OWN" SPUBLISH
done
