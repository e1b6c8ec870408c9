#!/usr/bin/env bash
# Fleet: push -> every host serving (p50/p99 over 50 pushes) and a fleet daemon's idle cost.
set -euo pipefail
cd "$(dirname "$0")/../.."
npx tsx bench/fleet/push-applied.ts 50
npx tsx bench/fleet/leader-resume.ts 5
# A fleet host's idle CPU and memory vs `run -c`.
npx tsx bench/fleet/idle-cost.ts
