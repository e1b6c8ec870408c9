#!/usr/bin/env bash
# Every benchmark, one after another (not part of `npm test`). Needs `sudo bash scripts/test-host.sh`.
# Results are copied by hand into docs/BENCHMARKS.md with the command that produced them.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
echo "== discover: elastic --version";           bash bench/discover/version.sh
echo "== discover: container start -> added";    npx tsx bench/discover/added-latency.ts 40
for f in bench/*/run.sh; do
  [ -x "$f" ] || continue
  echo "== $f"; bash "$f"
done
