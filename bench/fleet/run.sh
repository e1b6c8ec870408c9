#!/usr/bin/env bash
# Fleet: push -> every host serving (p50/p99 over 50 pushes) and a fleet daemon's idle cost.
set -euo pipefail
cd "$(dirname "$0")/../.."
npx tsx bench/fleet/push-applied.ts 50
npx tsx bench/fleet/leader-resume.ts 5
# Idle memory of one fleet host vs `run -c`, default V8 flags and the unit's (docs/fleet.md).
npx tsx bench/fleet/idle-memory.ts
FLEET_NODE_OPTIONS=--max-semi-space-size=1 npx tsx bench/fleet/idle-memory.ts
