#!/usr/bin/env bash
# `npm test`: set-up included (scripts/install.sh: the host's parts, dependencies, build; each step
# only when needed), then the typecheck and every test (unit, and integration against the real
# dockerd, kernel, HAProxy, nginx, Varnish, etcd). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --no-link
npm run typecheck --silent
npx vitest run "$@"
