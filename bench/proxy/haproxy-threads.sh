#!/usr/bin/env bash
# The warm path's steady state without the edge: HAProxy tcp mode in front of nginx, keep-alive,
# three configs in alternating rounds (only ratios within one run mean something on a shared host):
#   H   the benchmark's HAProxy (bench/proxy/run.sh: one server, default threads)
#   W1  the warm path's shape in one thread (`balance first`, slot maxconn 128, the edge as last server)
#   W2  the warm path as built: 2 threads, a backend per thread, the slot's 128 split 64 + 64
# Ports 18550-18553 on 127.0.0.1; every process is ours, stopped by pid.
# Usage: bash bench/proxy/haproxy-threads.sh [ROUNDS=8] [DURATION=4s] [CONNS=50]
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/proxy/nginx.sh
ROUNDS=${1:-8}
DUR=${2:-4s}
CONNS=${3:-50}
bench_tmp elastic-bench-hathreads
write_nginx "$TMP" 18550
nginx -c "$TMP/nginx.conf" & PIDS+=($!)
wait_port 18550
head() { printf 'global\n  maxconn 8000\n%s\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1d\n  timeout server 1d\n  timeout queue 30s\n' "$1"; }
slot() { printf 'backend %s\n  balance first\n  server n1 127.0.0.1:18550 maxconn %s\n  server edge 127.0.0.1:1\n' "$1" "$2"; }
{ head ''; printf 'frontend f\n  bind 127.0.0.1:18551\n  default_backend b\nbackend b\n  server app 127.0.0.1:18550\n'; } >"$TMP/H.cfg"
{ head '  nbthread 1'; printf 'frontend f\n  bind 127.0.0.1:18552\n  default_backend r0\n'; slot r0 128; } >"$TMP/W1.cfg"
{ head '  nbthread 2'; printf 'frontend f\n  bind 127.0.0.1:18553\n  acl t0 thread 0\n  acl t1 thread 1\n  use_backend r0 if t0\n  use_backend r1 if t1\n'; slot r0 64; slot r1 64; } >"$TMP/W2.cfg"
declare -A PORT=([H]=18551 [W1]=18552 [W2]=18553)
for c in H W1 W2; do
  haproxy -c -q -f "$TMP/$c.cfg"
  haproxy -db -f "$TMP/$c.cfg" >/dev/null 2>&1 & PIDS+=($!)
  wait_port "${PORT[$c]}"
done
declare -A SUM=([H]=0 [W1]=0 [W2]=0)
for r in $(seq 1 "$ROUNDS"); do
  line="round $r (load $(cut -d' ' -f1 /proc/loadavg)):"
  for c in H W1 W2; do
    rps=$(wrk -t1 -c"$CONNS" -d"$DUR" "http://127.0.0.1:${PORT[$c]}/" | awk '/Requests\/sec/ {printf "%.0f", $2}')
    SUM[$c]=$((SUM[$c] + rps))
    line="$line $c $rps"
  done
  echo "$line"
done
echo "mean req/s: H $((SUM[H] / ROUNDS))  W1 $((SUM[W1] / ROUNDS)) ($(echo "${SUM[W1]} / ${SUM[H]}" | bc -l | cut -c1-4)x H)  W2 $((SUM[W2] / ROUNDS)) ($(echo "${SUM[W2]} / ${SUM[H]}" | bc -l | cut -c1-4)x H)"
