#!/usr/bin/env bash
# Install elastic from this checkout, idempotently (Debian 12 / Ubuntu, as root):
#   1. the host's parts (scripts/test-host.sh: Docker, nft/iptables, HAProxy, nginx, Varnish, etcd, ...)
#   2. the npm dependencies (npm ci, only when package-lock.json changed since the last install)
#   3. the build (only when a source is newer than the last build)
#   4. `elastic` on PATH (a link in /usr/local/bin to this checkout's bin/run.js; not with --no-link,
#      which is how `npm test` calls it: tests run the checkout's own bin/run.js)
# A second run checks each step and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
exec </dev/null

link=1
[ "${1:-}" = --no-link ] && link=0

log() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts dockerd): sudo bash scripts/install.sh"
command -v node >/dev/null || die "Node.js 20.5 or later is needed (apt-get install nodejs npm, or your distribution's Node 20+)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=5)?0:1)' \
  || die "Node.js $(node --version) is too old: elastic needs 20.5 or later"

bash scripts/test-host.sh

# npm ci writes node_modules/.package-lock.json: newer than package-lock.json means installed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# oclif.manifest.json is the build's last step: anything newer than it means the build is stale.
if [ ! -f oclif.manifest.json ] || [ ! -d dist/commands ] \
  || [ -n "$(find src templates bin package.json tsconfig.json tsconfig.build.json -newer oclif.manifest.json -print -quit)" ]; then
  log "building (npm run build)"
  npm run build --silent >/dev/null
fi

target="$(pwd)/bin/run.js"
if [ "$link" = 0 ]; then
  log "ready: elastic $(node bin/run.js --version) (not linked)"
  exit 0
fi
if [ "$(readlink -f /usr/local/bin/elastic 2>/dev/null)" != "$target" ]; then
  if [ -e /usr/local/bin/elastic ] && [ ! -L /usr/local/bin/elastic ]; then
    die "/usr/local/bin/elastic exists and is not a link elastic made: remove it, then run this again"
  fi
  ln -sfn "$target" /usr/local/bin/elastic
  log "linked /usr/local/bin/elastic -> $target"
fi
log "ready: elastic $(elastic --version)"
