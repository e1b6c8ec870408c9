#!/usr/bin/env bash
# The README's first command: install everything elastic needs on this host, put `elastic` on
# PATH, and show it working on a default that needs no configuration (scripts/demo.sh).
# Idempotent: a second run is fast and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/demo.sh
