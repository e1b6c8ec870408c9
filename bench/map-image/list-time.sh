#!/usr/bin/env bash
# Benchmark: `elastic map-image list --json` wall time with one --spread hash mapping of N backends
# (a 32,749-slot spread map), in a private network namespace with its own state directory.
#   bash bench/map-image/list-time.sh [N=1000] [runs=5]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000}
RUNS=${2:-5}
((N >= 1 && N <= 16000)) || { echo "N: 1-16,000" >&2; exit 2; }
TMP=$(mktemp -d /tmp/mapimg-lt-XXXX)
export ELASTIC_STATE_DIR=$TMP/state ELASTIC_RUN_DIR=$TMP/run
cleanup() { ip netns del mapimg-lt 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
ip netns del mapimg-lt 2>/dev/null || true
ip netns add mapimg-lt; ip -n mapimg-lt link set lo up
args=()
for i in $(seq 0 $((N - 1))); do args+=(--backend "198.18.$((128 + (i + 1) / 256)).$(((i + 1) % 256)):80"); done
ip netns exec mapimg-lt node bin/run.js map-image 18391 mapimg-none:1 80 --address 198.19.3.17 --dataplane nft "${args[@]}" >/dev/null 2>&1
for r in $(seq 1 "$RUNS"); do
  s=$(date +%s%N)
  ip netns exec mapimg-lt node bin/run.js map-image list --json >/dev/null
  echo "list $(( ($(date +%s%N) - s) / 1000000 )) ms"
done
