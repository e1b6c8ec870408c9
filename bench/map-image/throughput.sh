#!/usr/bin/env bash
# Benchmark: new connections/s through a mapping of N backends vs direct, in namespaces:
#   client (mapimg-bc 198.19.3.18) -> LB (mapimg-bl 198.19.3.17 | 198.19.3.21) -> backends (mapimg-bb 198.19.3.22).
# The N backends are N addresses of 198.18.128.0/18, all local to the backend namespace (one AnyIP
# route) and served by ONE nginx socket on :20000: the backend does the same work in every case, so
# the cases differ only in the LB's path. (An nginx with N listening ports, the first version of this
# bench, made the backend itself slower with N: session 9 measured random and hash against that.)
# The mapping is made by the real CLI inside the LB namespace.
#   bash bench/map-image/throughput.sh [N=1000] [seconds=5] [rounds=3]
# Cases, alternated round by round (the machine drifts): direct (routed, no conntrack), floor (one
# hand-written `dnat to` rule: conntrack + NAT and nothing of ours), nft 1 backend, nft random N,
# nft hash N; then once: nft hash 10, iptables 1 and N. One line per case and round (requests/s with
# a new connection per request, and with keep-alive), then the medians and their ratio to direct.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000}
SECS=${2:-5}
ROUNDS=${3:-3}
((N >= 1 && N <= 16000)) || { echo "N: 1-16,000 backends (addresses of 198.18.128.0/18)" >&2; exit 2; }
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

# N backends: N addresses local to the backend namespace (AnyIP), one nginx socket for all of them.
ip -n mapimg-bb route add local 198.18.128.0/18 dev lo
ip -n mapimg-bl route add 198.18.128.0/18 via 198.19.3.22
addr() { echo "198.18.$((128 + ($1 + 1) / 256)).$((($1 + 1) % 256))"; }
echo "worker_processes 1; worker_rlimit_nofile 16384; pid $TMP/nginx.pid; error_log $TMP/error.log; daemon on;
events { worker_connections 8192; } http { access_log off; server { listen 20000; location / { return 200 'ok\n'; } } }" > "$TMP/nginx.conf"
ip netns exec mapimg-bb nginx -c "$TMP/nginx.conf"

RESULTS=$TMP/results
run() { # name url
  local close ka
  close=$(ip netns exec mapimg-bc wrk -t1 -c50 -d"${SECS}"s -H 'Connection: close' "$2" | awk '/Requests\/sec/ {print $2}')
  ka=$(ip netns exec mapimg-bc wrk -t1 -c50 -d"${SECS}"s "$2" | awk '/Requests\/sec/ {print $2}')
  echo "$1 new-connection=${close} keep-alive=${ka}"
  echo "$1 $close $ka" >> "$RESULTS"
}
map() { # plane count [spread]
  local args=()
  for i in $(seq 0 $(($2 - 1))); do args+=(--backend "$(addr "$i"):20000"); done
  ip netns exec mapimg-bl node "$ELASTIC" map-image 18390 mapimg-none:1 80 --address 198.19.3.17 --dataplane "$1" ${3:+--spread "$3"} "${args[@]}" --json >/dev/null
}
unmap() { ip netns exec mapimg-bl node "$ELASTIC" map-image stop 18390 >/dev/null; }
# The floor: conntrack and NAT of one connection, with nothing of elastic's (no map, set or counter).
floor() {
  printf '%s\n' 'table ip mapimg_floor {' \
    " chain pre { type nat hook prerouting priority -100; ip daddr 198.19.3.17 tcp dport 18390 dnat to $(addr 0):20000; }" \
    ' chain post { type nat hook postrouting priority 100; }' '}' | ip netns exec mapimg-bl nft -f -
}
unfloor() { ip netns exec mapimg-bl nft delete table ip mapimg_floor; }

DIRECT="http://$(addr 0):20000/"
LB=http://198.19.3.17:18390/
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r" >&2
  run "direct" "$DIRECT"
  floor;               run "floor-1-dnat-rule" "$LB";    unfloor
  map nft 1 random;    run "nft-1-backend" "$LB";        unmap
  map nft "$N" random; run "nft-$N-backends" "$LB";      unmap
  map nft "$N" hash;   run "nft-hash-$N-backends" "$LB"; unmap
done
map nft 10 hash;     run "nft-hash-10-backends" "$LB"; unmap
map iptables 1;      run "iptables-1-backend" "$LB";   unmap
map iptables "$N";   run "iptables-$N-backends" "$LB"; unmap
run "direct" "$DIRECT"

echo "medians over $ROUNDS round(s) (direct: $((ROUNDS + 1)) runs), new connection / keep-alive, and x direct:"
awk '{ c[$1] = c[$1] " " $2; k[$1] = k[$1] " " $3; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  function median(list,   a, m, i, j, t) { m = split(list, a, " "); for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
  END { dc = median(c["direct"]); dk = median(k["direct"])
    for (i = 1; i <= n; i++) { x = order[i]; mc = median(c[x]); mk = median(k[x])
      printf "  %-24s %10.0f %10.0f   %.3fx %.3fx\n", x, mc, mk, mc / dc, mk / dk } }' "$RESULTS"
