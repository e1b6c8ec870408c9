#!/usr/bin/env bash
# Benchmark: new connections/s through a mapping of N backends vs direct, in namespaces:
#   client (mapimg-bc 198.19.3.18) -> LB (mapimg-bl 198.19.3.17 | 198.19.3.21) -> nginx (mapimg-bb 198.19.3.22,
#   ports 20000..20000+N-1). The mapping is made by the real CLI inside the LB namespace.
#   bash bench/map-image/throughput.sh [N=1000] [seconds=5]
# Prints one line per case: requests/s with a new connection per request, and with keep-alive.
# nft cases: --spread random (numgen) and --spread hash (jhash of the flow into a Maglev table).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000}
SECS=${2:-5}
TMP=$(mktemp -d /tmp/mapimg-tp-XXXX)
export ELASTIC_STATE_DIR=$TMP/state ELASTIC_RUN_DIR=$TMP/run
cleanup() {
  [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  for ns in mapimg-bc mapimg-bl mapimg-bb; do ip netns del $ns 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
cleanup 2>/dev/null; mkdir -p "$TMP/pkg"
# A private copy of the built CLI: a concurrent `npm run build` (rm -rf dist) cannot pull it away mid-run.
cp -r bin dist package.json oclif.manifest.json "$TMP/pkg/"; ln -s "$PWD/node_modules" "$TMP/pkg/node_modules"
ELASTIC="$TMP/pkg/bin/run.js"
for ns in mapimg-bc mapimg-bl mapimg-bb; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add mapimg-bc0 type veth peer name mapimg-bl0
ip link set mapimg-bc0 netns mapimg-bc; ip link set mapimg-bl0 netns mapimg-bl
ip link add mapimg-bl1 type veth peer name mapimg-bb0
ip link set mapimg-bl1 netns mapimg-bl; ip link set mapimg-bb0 netns mapimg-bb
ip -n mapimg-bc addr add 198.19.3.18/30 dev mapimg-bc0; ip -n mapimg-bc link set mapimg-bc0 up
ip -n mapimg-bl addr add 198.19.3.17/30 dev mapimg-bl0; ip -n mapimg-bl link set mapimg-bl0 up
ip -n mapimg-bl addr add 198.19.3.21/30 dev mapimg-bl1; ip -n mapimg-bl link set mapimg-bl1 up
ip -n mapimg-bb addr add 198.19.3.22/30 dev mapimg-bb0; ip -n mapimg-bb link set mapimg-bb0 up
ip -n mapimg-bc route add default via 198.19.3.17
ip -n mapimg-bb route add default via 198.19.3.21
ip netns exec mapimg-bl sysctl -qw net.ipv4.ip_forward=1
# The client reaches the same backend directly and through the DNAT: avoid PAWS rejects (TEST-HOST.md).
ip netns exec mapimg-bc sysctl -qw net.ipv4.tcp_timestamps=2
ip netns exec mapimg-bc sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
ip netns exec mapimg-bc sysctl -qw net.ipv4.tcp_tw_reuse=1

{
  # Each listening socket takes a worker connection: room for N of them plus 4,096 clients.
  echo "worker_processes 1; worker_rlimit_nofile $((2 * N + 8192)); pid $TMP/nginx.pid; error_log $TMP/error.log; daemon on;"
  echo "events { worker_connections $((N + 4096)); }"
  echo "http { access_log off; server {"
  for i in $(seq 0 $((N - 1))); do echo "listen 198.19.3.22:$((20000 + i)) reuseport;"; done
  echo "location / { return 200 'ok\n'; } } }"
} > "$TMP/nginx.conf"
ip netns exec mapimg-bb nginx -c "$TMP/nginx.conf"

run() { # name url
  local close ka
  close=$(ip netns exec mapimg-bc wrk -t1 -c50 -d"${SECS}"s -H 'Connection: close' "$2" | awk '/Requests\/sec/ {print $2}')
  ka=$(ip netns exec mapimg-bc wrk -t1 -c50 -d"${SECS}"s "$2" | awk '/Requests\/sec/ {print $2}')
  echo "$1 new-connection=${close} keep-alive=${ka}"
}
map() { # plane count [spread]
  local args=()
  for i in $(seq 0 $(($2 - 1))); do args+=(--backend "198.19.3.22:$((20000 + i))"); done
  ip netns exec mapimg-bl node "$ELASTIC" map-image 18390 mapimg-none:1 80 --address 198.19.3.17 --dataplane "$1" ${3:+--spread "$3"} "${args[@]}" --json >/dev/null
}
unmap() { ip netns exec mapimg-bl node "$ELASTIC" map-image stop 18390 >/dev/null; }

run "direct" http://198.19.3.22:20000/
map nft 1 random;    run "nft-1-backend" http://198.19.3.17:18390/;        unmap
map nft "$N" random; run "nft-$N-backends" http://198.19.3.17:18390/;      unmap
map nft 10 hash;     run "nft-hash-10-backends" http://198.19.3.17:18390/; unmap
map nft "$N" hash;   run "nft-hash-$N-backends" http://198.19.3.17:18390/; unmap
map iptables 1;    run "iptables-1-backend" http://198.19.3.17:18390/;   unmap
map iptables "$N"; run "iptables-$N-backends" http://198.19.3.17:18390/; unmap
run "direct-again" http://198.19.3.22:20000/
