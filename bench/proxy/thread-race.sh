#!/usr/bin/env bash
# HAProxy alone (no edge): does `balance first` + a `maxconn 1` server, with an unlimited last
# server (the warm path's shape, docs/proxy.md "Threads"), ever queue a client or go above the
# maxconn when two threads share the backend? And with one backend per thread (the warm path)?
# Clients: wrk, a new connection per request, 200 at a time; app and "edge" are nginx.
# Reads HAProxy's `show stat` after each run: qmax > 0 (a client queued behind the slot) or
# smax > 1 (two sessions on it) is the race. Ports 18545-18548 on 127.0.0.1, every process ours.
# Usage: bash bench/proxy/thread-race.sh [RUNS=4] [DURATION=30s]
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/proxy/nginx.sh
RUNS=${1:-4}
DUR=${2:-30s}
bench_tmp elastic-bench-race
write_nginx "$TMP/app" 18545
write_nginx "$TMP/edge" 18546
nginx -c "$TMP/app/nginx.conf" & PIDS+=($!)
nginx -c "$TMP/edge/nginx.conf" & PIDS+=($!)
wait_port 18545; wait_port 18546
backend() { printf 'backend %s\n  balance first\n  timeout queue 30s\n  server app 127.0.0.1:18545 %s maxconn 1\n  server edge 127.0.0.1:18546\n' "$1" "$2"; }
for layout in shared per-thread; do
  {
    printf 'global\n  maxconn 8000\n  nbthread 2\n  stats socket %s/%s.sock mode 600 level admin\n' "$TMP" "$layout"
    printf 'defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\nfrontend f\n  bind 127.0.0.1:18547\n'
    if [ $layout = shared ]; then
      printf '  default_backend b0\n'; backend b0 ''
    else
      # The app's one slot lives in thread 0's backend; thread 1's has it in maintenance.
      printf '  acl t0 thread 0\n  use_backend b0 if t0\n  default_backend b1\n'; backend b0 ''; backend b1 disabled
    fi
  } >"$TMP/$layout.cfg"
  for run in $(seq 1 "$RUNS"); do
    haproxy -db -f "$TMP/$layout.cfg" >/dev/null 2>&1 & hp=$!
    PIDS+=("$hp")
    wait_port 18547
    rps=$(wrk -t2 -c200 -d"$DUR" -H 'Connection: close' http://127.0.0.1:18547/ | awk '/Requests\/sec/ {print $2}')
    echo "show stat -1 4 -1" | socat - "$TMP/$layout.sock" | awk -F, -v l=$layout -v r=$run -v rps="$rps" -v load="$(cut -d' ' -f1 /proc/loadavg)" \
      '$2=="app" {printf "%-10s run %s  %s/app  qmax %s  smax %s  sessions %s  (%s req/s, load %s)\n", l, r, $1, $4, $6, $8, rps, load}'
    kill "$hp"; wait "$hp" 2>/dev/null || true
  done
done
