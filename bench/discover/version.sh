#!/usr/bin/env bash
# `elastic --version` wall time (goal < 300 ms), with `--help` (loads oclif) beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f dist/commands/discover.js ] || npm run build >/dev/null
hyperfine --warmup 3 --runs 30 -N 'node bin/run.js --version' 'node bin/run.js --help' 'node bin/run.js discover --help'
