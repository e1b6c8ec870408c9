#!/usr/bin/env bash
# Benchmarks of `elastic proxy` (not part of `npm test`). Same run, same machine:
#   wrk through the edge (its default warm path: the edge's HAProxy straight to the app; WARM=off
#   for the pull path through edge + node) vs direct to the app vs HAProxy tcp mode in front of the
#   same app, with a new connection per request and with keep-alive, for
#   - a slow single-threaded app (bench/proxy/cpu-app.mjs, WORK_MS of CPU per request)
#   - a fast app (nginx serving a 6-byte file)
#   and cold start: first request to first byte through a scaled-to-zero edge, minus the app's
#   own start time.
# Every process is ours, on 127.0.0.1, ports 18520-18539, stopped by pid at the end.
# Usage: bash bench/proxy/run.sh [DURATION=5s] [CONNS=50]   (SKIP_SLOW=1 / SKIP_FAST=1 skip a suite)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/proxy/nginx.sh
DUR=${1:-5s}
CONNS=${2:-50}
NODE=$(command -v node)
TMP=$(mktemp -d /tmp/elastic-bench-proxy.XXXXXX)
chmod 755 "$TMP" # nginx workers (nobody) read the file
# A private copy of the build: other work in this checkout may rebuild dist/ meanwhile.
[ -f dist/commands/proxy/edge.js ] || npm run build >/dev/null
mkdir -p "$TMP/elastic"
cp -r bin dist package.json oclif.manifest.json "$TMP/elastic/"
ln -s "$PWD/node_modules" "$TMP/elastic/node_modules"
BIN="$TMP/elastic/bin/run.js"
export ELASTIC_RUN_DIR="$TMP/run" ELASTIC_STATE_DIR="$TMP/state"
export ELASTIC_EDGE_TOKEN=bench-token-0123456789abcdef
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

APP=18520 EDGE=18521 NODEPORT=18522 HAP=18523 COLD=18524 COLDNODE=18525

wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; tail -5 "$TMP"/*.log >&2; return 1; }

# wrk: prints "req/s p50_ms" for one run
bench() {
  local url=$1 conns=$2; shift 2
  wrk -t1 -c"$conns" -d"$DUR" --latency "$@" "$url" >"$TMP/wrk.txt" 2>&1 || true
  local rps p50
  rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.txt")
  p50=$(awk '$1=="50%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' "$TMP/wrk.txt")
  local errs
  errs=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$TMP/wrk.txt")
  echo "${rps:-0} ${p50:-0} ${errs}"
}

start_haproxy() {
  cat >"$TMP/haproxy.cfg" <<CFG
global
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$HAP
  default_backend b
backend b
  server app 127.0.0.1:$APP
CFG
  haproxy -f "$TMP/haproxy.cfg" -db >/dev/null 2>&1 &
  HAPROXY_PID=$!
  PIDS+=("$HAPROXY_PID")
  wait_port $HAP
}

start_edge() {
  "$NODE" "$BIN" proxy edge -p $EDGE --node-port $NODEPORT --max-queue 10000 --warm "${WARM:-haproxy}" --log-level warn >/dev/null 2>"$TMP/edge.log" &
  EDGE_PID=$!
  PIDS+=("$EDGE_PID")
  wait_port $EDGE
  wait_port $NODEPORT
}

# run_app NAME CONCURRENCY -- APP COMMAND: the node starts the app on port $APP
run_suite() {
  local name=$1 conc=$2; shift 3
  "$NODE" "$BIN" proxy node --edge 127.0.0.1:$NODEPORT --concurrency "$conc" --app-port $APP --log-level warn -- "$@" >/dev/null 2>"$TMP/node.log" &
  local node_pid=$!
  PIDS+=("$node_pid")
  wait_port $APP
  sleep 1 # the pull connections are up
  for mode in close keepalive; do
    local hdr=()
    [ "$mode" = close ] && hdr=(-H "Connection: close")
    read -r d_rps d_p50 d_err < <(bench "http://127.0.0.1:$APP/" "$CONNS" "${hdr[@]}")
    read -r h_rps h_p50 h_err < <(bench "http://127.0.0.1:$HAP/" "$CONNS" "${hdr[@]}")
    read -r e_rps e_p50 e_err < <(bench "http://127.0.0.1:$EDGE/" "$CONNS" "${hdr[@]}")
    printf '%-6s %-9s c=%-3s direct %9.0f  haproxy %9.0f  edge %9.0f  edge/direct %.2f  edge/haproxy %.2f  %s%s%s\n' \
      "$name" "$mode" "$CONNS" "$d_rps" "$h_rps" "$e_rps" "$(echo "$e_rps / $d_rps" | bc -l)" "$(echo "$e_rps / $h_rps" | bc -l)" "$d_err" "$h_err" "$e_err"
  done
  # Added latency at 10 connections, keep-alive (p50 of wrk's latency distribution).
  read -r d_rps d_p50 _ < <(bench "http://127.0.0.1:$APP/" 10)
  read -r h_rps h_p50 _ < <(bench "http://127.0.0.1:$HAP/" 10)
  read -r e_rps e_p50 _ < <(bench "http://127.0.0.1:$EDGE/" 10)
  printf '%-6s latency   c=10  p50 direct %.3f ms  haproxy %.3f ms  edge %.3f ms  added by edge %.3f ms\n' "$name" "$d_p50" "$h_p50" "$e_p50" "$(echo "$e_p50 - $d_p50" | bc -l)"
  read -r d_rps d_p50 _ < <(bench "http://127.0.0.1:$APP/" 10 -H "Connection: close")
  read -r h_rps h_p50 _ < <(bench "http://127.0.0.1:$HAP/" 10 -H "Connection: close")
  read -r e_rps e_p50 _ < <(bench "http://127.0.0.1:$EDGE/" 10 -H "Connection: close")
  printf '%-6s latency   c=10  p50 new conn: direct %.3f ms  haproxy %.3f ms  edge %.3f ms  added by edge %.3f ms (by haproxy %.3f ms)\n' "$name" "$d_p50" "$h_p50" "$e_p50" "$(echo "$e_p50 - $d_p50" | bc -l)" "$(echo "$h_p50 - $d_p50" | bc -l)"
  kill "$node_pid"
  wait "$node_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$APP) 2>/dev/null || break; sleep 0.05; done
}

echo "load before: $(cut -d" " -f1-3 /proc/loadavg)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), node $("$NODE" -v), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1 | cut -d' ' -f3), wrk -t1 -d$DUR"
start_edge
start_haproxy

# Slow single-threaded app: it serializes requests itself; the node offers 64 slots so that
# keep-alive connections do not starve each other (with --concurrency 1 a keep-alive client
# holds the only slot: that is the point of the setting, tested in test/integration).
[ "${SKIP_SLOW:-}" ] || run_suite slow 64 -- "$NODE" bench/proxy/cpu-app.mjs

# Fast app: nginx, one worker, a 6-byte file.
write_nginx "$TMP" "$APP"
[ "${SKIP_FAST:-}" ] || run_suite fast 128 -- nginx -c "$TMP/nginx.conf"

# Cold start: an edge with no instance; the first request starts `elastic proxy node -- app`.
app_start_ms() {
  local t0 t1
  t0=$(date +%s%N)
  PORT=$COLDNODE "$NODE" test/fixtures/proxy/fast-app.mjs &
  local p=$!
  wait_port $COLDNODE
  t1=$(date +%s%N)
  kill $p; wait $p 2>/dev/null || true
  echo $(( (t1 - t0) / 1000000 ))
}
# Waits for a listening socket without connecting (a connection would be a client: it starts an instance).
wait_listen() { for _ in $(seq 1 200); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done; echo "port $1 never listened" >&2; return 1; }
for i in 1 2 3; do
  # without the spare (--no-spare), then with it (the default for this start command; --spare for clarity): docs/proxy.md, "Cold start"; given 2 s to load.
  "$NODE" "$BIN" proxy edge -p $COLD --no-spare --log-level warn --name cold -- "$NODE" "$BIN" proxy node -- "$NODE" test/fixtures/proxy/fast-app.mjs >/dev/null 2>>"$TMP/cold.log" &
  cold_pid=$!
  wait_listen $COLD
  first=$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://127.0.0.1:$COLD/")
  kill $cold_pid; wait $cold_pid 2>/dev/null || true
  "$NODE" "$BIN" proxy edge -p $COLD --spare --log-level warn --name cold -- "$NODE" "$BIN" proxy node -- "$NODE" test/fixtures/proxy/fast-app.mjs >/dev/null 2>>"$TMP/cold.log" &
  cold_pid=$!
  wait_listen $COLD
  sleep 2
  first_spare=$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://127.0.0.1:$COLD/")
  kill $cold_pid; wait $cold_pid 2>/dev/null || true
  app=$(app_start_ms)
  node_only=$( { /usr/bin/time -f %e "$NODE" "$BIN" proxy node --help >/dev/null; } 2>&1 )
  # The node as the edge starts it (bin/run.js fast path, no oclif), up to its first log line.
  /usr/bin/time -f %e -o "$TMP/t" "$NODE" "$BIN" proxy node --edge 127.0.0.1:1 --start-timeout 0 -- /bin/true >/dev/null 2>&1 || true
  node_fast=$(tail -1 "$TMP/t")
  bare=$( { /usr/bin/time -f %e "$NODE" -e 0; } 2>&1 )
  printf 'cold   run %d  --spare: first byte %.0f ms  app alone %d ms  edge+node overhead %.0f ms\n' "$i" "$(echo "$first_spare * 1000" | bc -l)" "$app" "$(echo "$first_spare * 1000 - $app" | bc -l)"
  printf 'cold   run %d  first byte %.0f ms  app alone %d ms  edge+node overhead %.0f ms  (elastic CLI load: %.0f ms; node fast path start+exit: %.0f ms; bare node: %.0f ms)\n' "$i" "$(echo "$first * 1000" | bc -l)" "$app" "$(echo "$first * 1000 - $app" | bc -l)" "$(echo "$node_only * 1000" | bc -l)" "$(echo "$node_fast * 1000" | bc -l)" "$(echo "$bare * 1000" | bc -l)"
done
