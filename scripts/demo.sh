#!/usr/bin/env bash
# elastic doing its job on a host with no configuration: three web containers, discovered, and an
# HAProxy in front of them that elastic renders and starts on 127.0.0.1:${ELASTIC_DEMO_PORT:-8080}.
# Idempotent: containers that exist are reused, an unchanged config is not applied again.
# Remove it with: elastic render stop --service demo; docker rm -f elastic-demo-1 elastic-demo-2 elastic-demo-3
set -euo pipefail
exec </dev/null
port="${ELASTIC_DEMO_PORT:-8080}"

for i in 1 2 3; do
  name="elastic-demo-$i"
  state=$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null || true)
  case "$state" in
    true) ;;
    false) docker start "$name" >/dev/null ;;
    *) docker run -d --name "$name" --label elastic.demo=true --restart unless-stopped elastic-test/web:1 >/dev/null ;;
  esac
done

echo "== the backends: elastic discover --label elastic.demo=true --port 80"
elastic discover --label elastic.demo=true --port 80
echo
echo "== an HAProxy in front of them: elastic render --service demo --bind 127.0.0.1:$port ... --start"
elastic render --service demo --bind "127.0.0.1:$port" --label elastic.demo=true --port 80 --start --log-level warn
echo
echo "== four requests through it (each answer is the id of the container that served it)"
for _ in 1 2 3 4; do curl -fsS --max-time 2 "http://127.0.0.1:$port/id"; done
echo
echo "Next: elastic top, elastic --help, docs/ in this checkout."
