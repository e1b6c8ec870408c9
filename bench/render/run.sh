#!/usr/bin/env bash
# render benchmarks (not part of npm test). Needs haproxy, wrk, busybox (scripts/test-host.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "-- backend change -> served (runtime API vs reload)"; npx tsx bench/render/latency.ts 50
echo "-- failed requests under load: 100 runtime changes + 20 reloads"; npx tsx bench/render/zero-loss.ts 100 20
echo "-- failed requests over membership changes under keep-alive load (haproxy, nginx, varnish)"; npx tsx bench/render/membership.ts
echo "-- TLS: rendered vs hand-written HAProxy (3 sites), certificate rotation latency"; npx tsx bench/render/tls.ts 5 3 20
