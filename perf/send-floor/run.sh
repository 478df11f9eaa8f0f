#!/usr/bin/env bash
# The kernel's floor under one fan-out: how long N loopback TCP sends of one 130-byte
# frame take on one core (core 0), with a reader draining the receivers on core 1;
# once with one send() per socket, once with all of them in one io_uring submission.
# No server is involved: this is the least any server pays to reach N sockets.
#   perf/send-floor/run.sh [sockets] [rounds]      (needs gcc and liburing-dev)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/streamhub-send-floor
gcc -O2 -o "$out" "$here/send_floor.c" -lpthread -luring
"$out" "${1:-9000}" "${2:-20}"
