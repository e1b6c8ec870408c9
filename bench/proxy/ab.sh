#!/usr/bin/env bash
# A/B of two builds of the edge + node in front of the same nginx, alternating in one run
# (the machine is shared: only ratios within one run mean something).
#   bash bench/proxy/ab.sh OLD_COMMIT [DURATION=4s] [ROUNDS=2]
# OLD_COMMIT is built from `git archive` into a temp dir; "new" is a copy of this checkout's dist/
# (run `npm run build` first). Ports 18540-18542 on 127.0.0.1; every process is ours, stopped by pid.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/proxy/nginx.sh
OLD=${1:?usage: ab.sh OLD_COMMIT [DURATION] [ROUNDS]}
DUR=${2:-4s}
ROUNDS=${3:-2}
T=$(mktemp -d /tmp/elastic-bench-proxy-ab.XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/old" "$T/new" "$T/run" "$T/state"
git archive "$OLD" src bin package.json tsconfig.build.json tsconfig.json | tar -x -C "$T/old"
ln -s "$PWD/node_modules" "$T/old/node_modules"
(cd "$T/old" && node_modules/.bin/tsc -p tsconfig.build.json --outDir dist)
cp oclif.manifest.json "$T/old/"
cp -r bin dist package.json oclif.manifest.json "$T/new/"
ln -s "$PWD/node_modules" "$T/new/node_modules"
write_nginx "$T" 18540
export ELASTIC_RUN_DIR="$T/run" ELASTIC_STATE_DIR="$T/state" ELASTIC_EDGE_TOKEN=bench-token-0123456789abcdef
w() { wrk -t1 -c"$1" -d"$DUR" --latency "${@:2}" | awk '/Requests\/sec/ {r=$2} $1=="50%" {p=$2} END {printf "%7.0f req/s p50 %-8s", r, p}'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  for v in old new; do
    node "$T/$v/bin/run.js" proxy edge -p 18541 --node-port 18542 --max-queue 10000 --log-level warn --name "ab-$v" >/dev/null 2>"$T/edge.log" &
    E=$!; PIDS+=("$E")
    wait_port 18542
    node "$T/$v/bin/run.js" proxy node --edge 127.0.0.1:18542 --concurrency 128 --app-port 18540 --log-level warn -- nginx -c "$T/nginx.conf" >/dev/null 2>"$T/node.log" &
    N=$!; PIDS+=("$N")
    wait_port 18540
    sleep 1 # the pull connections are up
    echo "$v round $round  new conn c=50: direct $(w 50 -H 'Connection: close' http://127.0.0.1:18540/) edge $(w 50 -H 'Connection: close' http://127.0.0.1:18541/)"
    echo "$v round $round  keep-alive c=50: direct $(w 50 http://127.0.0.1:18540/) edge $(w 50 http://127.0.0.1:18541/)"
    echo "$v round $round  new conn c=10: direct $(w 10 -H 'Connection: close' http://127.0.0.1:18540/) edge $(w 10 -H 'Connection: close' http://127.0.0.1:18541/)"
    kill "$N"; wait "$N" 2>/dev/null || true
    kill "$E"; wait "$E" 2>/dev/null || true
    for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/18540) 2>/dev/null || break; sleep 0.05; done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
