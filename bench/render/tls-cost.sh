#!/bin/bash
# HAProxy's own cost per keep-alive TLS request, rendered config vs hand-written (issue 16), in
# instructions (valgrind callgrind): deterministic, so it holds on a busy machine where req/s
# does not. Each config serves N1 then N2 GETs over one TLS connection (curl URL globbing);
# (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one request, handshake and start-up excluded.
# Variants: R (rendered), R-noretry (rendered without its `retry-on` line), H (the hand-written
# config of bench/render/tls.ts), H+retry (H with the rendered zero-loss retries: `retries 3`,
# `option redispatch 1`, `retry-on conn-failure empty-response response-timeout` and no L7 retry
# of POST/PATCH/LOCK: the equivalent config, the one the goal is measured against).
# Two counts per variant. "as run": glibc's memcpy takes `rep movsb` for large copies, and
# valgrind counts each of its byte iterations, so the L7 retry's 16 kB copy of the request buffer
# shows as ~33,000 instructions where the CPU (ERMS/FSRM) spends a few hundred cycles.
# "vector memcpy": the same with GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold set above 16 kB,
# so the copy runs as glibc's AVX loop (~3,100 instructions): closer to what it costs the CPU.
# Usage: bash bench/render/tls-cost.sh [N1=500] [N2=3000]   (needs haproxy, valgrind, curl, openssl)
# Ports: TLS 27720-27723, plain 27740-27743, backends 27610-27612 (127.0.0.1).
set -euo pipefail
N1=${1:-500}; N2=${2:-3000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=$(mktemp -d /tmp/el-tlscost-XXXXXX)
BE=
cleanup() { [ -n "$BE" ] && kill "$BE" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
mkdir "$D/certs"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$D/k.pem" -out "$D/c.pem" -days 2 -subj /CN=localhost 2>/dev/null
for n in localhost api.example.com _.example.com default; do cat "$D/c.pem" "$D/k.pem" > "$D/certs/$n.pem"; done
printf '%s\n' "$D/certs/default.pem" "$D/certs/localhost.pem localhost" "$D/certs/api.example.com.pem api.example.com" "$D/certs/_.example.com.pem *.example.com" > "$D/crt.list"
site() { printf '  - name: %s\n    bind: 127.0.0.1:27740\n    hosts: ["%s"]\n    tls: true\n    lb_check: none\n    select: { backend: ["127.0.0.1:%s"] }\n' "$1" "$2" "$3"; }
{ echo "tls_bind: 127.0.0.1:27720"; echo "cert_dir: $D/certs"; echo services:; site local localhost 27610; site api api.example.com 27611; site wild '*.example.com' 27612; } > "$D/sites.yaml"
# The rendered config, as `elastic render` writes it (dry run: its text diff against nothing).
ELASTIC_STATE_DIR="$D/state" ELASTIC_RUN_DIR="$D/run" node "$ROOT/bin/run.js" render --config "$D/sites.yaml" --instance-name tlscost --dry-run 2>/dev/null \
  | sed -n 's/^+//p' | sed '1,2d' | sed -e '/master-worker/d' -e "s#stats socket [^ ]*#stats socket $D/r.sock#" -e 's/ expose-fd listeners//' -e "s#crt-list [^ ]*#crt-list $D/crt.list#" > "$D/R.cfg"
sed -e '/retry-on/d' -e 's/27720/27721/' -e 's/27740/27741/' "$D/R.cfg" > "$D/R-noretry.cfg"
cat > "$D/H.cfg" <<CFG
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:27742
  bind 127.0.0.1:27722 ssl crt-list $D/crt.list alpn http/1.1
  option forwardfor
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
  http-request return status 404 unless { req.hdr(host),field(1,:),lower -m str localhost } || { req.hdr(host),field(1,:),lower -m end .example.com }
  use_backend b_local if { req.hdr(host),field(1,:),lower -m str localhost }
  use_backend b_api if { req.hdr(host),field(1,:),lower -m str api.example.com }
  use_backend b_wild if { req.hdr(host),field(1,:),lower -m end .example.com }
backend b_local
  server s1 127.0.0.1:27610
backend b_api
  server s1 127.0.0.1:27611
backend b_wild
  server s1 127.0.0.1:27612
CFG
sed -e 's/27722/27723/' -e 's/27742/27743/' -e 's/^  timeout server 30s/  timeout server 30s\n  retries 3\n  option redispatch 1/' \
  -e 's/^backend \(.*\)$/backend \1\n  retry-on conn-failure empty-response response-timeout\n  http-request disable-l7-retry if METH_POST || { method PATCH LOCK }/' "$D/H.cfg" > "$D/H+retry.cfg"
node -e "const h=require('node:http');for(const[n,p]of[['local',27610],['api',27611],['wild',27612]])h.createServer((q,r)=>{r.setHeader('content-type','text/plain');r.end(n+' '+q.url)}).listen(p,'127.0.0.1')" &
BE=$!
ir() { # cfg port n -> total instructions of one HAProxy process serving n requests
  env ${TUNE:+GLIBC_TUNABLES=$TUNE} valgrind --tool=callgrind --callgrind-out-file="$D/cg.out" haproxy -db -f "$D/$1.cfg" >"$D/vg.log" 2>&1 &
  local pid=$!
  for _ in $(seq 150); do curl -sk -o /dev/null "https://localhost:$2/" && break; sleep 0.2; done
  curl -sk -o /dev/null "https://localhost:$2/[1-$3]"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:/{print $2}' "$D/cg.out"
}
for mode in "as run" "vector memcpy"; do
  TUNE=; [ "$mode" = "vector memcpy" ] && TUNE=glibc.cpu.x86_rep_movsb_threshold=1000000
  declare -A PER
  for v in R:27720 R-noretry:27721 H:27722 H+retry:27723; do
    name=${v%%:*}; port=${v##*:}
    a=$(ir "$name" "$port" "$N1"); b=$(ir "$name" "$port" "$N2")
    PER[$name]=$(( (b - a) / (N2 - N1) ))
    echo "$mode: $name: ${PER[$name]} instructions per keep-alive request"
  done
  awk -v m="$mode" -v r="${PER[R]}" -v h="${PER[H]}" -v hr="${PER[H+retry]}" -v rn="${PER[R-noretry]}" 'BEGIN{printf "%s, instructions (lower is cheaper): R/(H+retry) %.3fx (the equivalent), R/H %.3fx, R-noretry/H %.3fx\n", m, r/hr, r/h, rn/h}'
done
