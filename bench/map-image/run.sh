#!/usr/bin/env bash
# Every map-image benchmark (not part of `npm test`; needs root and scripts/test-host.sh).
#   bash bench/map-image/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "== map-image: program 1,000 backends / add one (inside a fresh netns)"
ip netns del mapimg-bp 2>/dev/null || true
ip netns add mapimg-bp
trap 'ip netns del mapimg-bp 2>/dev/null || true' EXIT
for plane in nft iptables; do ip netns exec mapimg-bp npx tsx bench/map-image/program.ts "$plane" 1000 30; done
echo "== map-image: what one nft operation costs at 1,000 backends"
ip netns exec mapimg-bp npx tsx bench/map-image/nft-costs.ts 1000
echo "== map-image: container start -> first DNATed connection"
for plane in nft iptables; do npx tsx bench/map-image/latency.ts "$plane" 30; done
echo "== map-image: new connections/s through 1,000 backends vs direct"
bash bench/map-image/throughput.sh 1000 5 3
