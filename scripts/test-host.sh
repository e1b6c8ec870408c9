#!/usr/bin/env bash
# Set up this machine as an elastic test host, idempotently (Debian 12 / Ubuntu, as root):
# installs and starts what the tests need. Safe to run again; it only starts what is not running.
#   - Docker Engine (docker.io + runc), bridge and address pools in 198.18.0.0/15 (RFC 2544)
#   - the test image elastic-test/web:1 (busybox-static + httpd), built with `docker import`
#   - iptables, nftables, conntrack, iproute2, haproxy, nginx, varnish, etcd, wrk, hyperfine, tmux
# Never changes the host's firewall: the tests put their rules in namespaces or ELASTIC- chains.
set -euo pipefail

log() { printf 'test-host: %s\n' "$*" >&2; }
die() { printf 'test-host: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts dockerd)"

PKGS=(docker.io runc busybox-static iptables nftables conntrack iproute2 haproxy nginx-light
      varnish etcd-server etcd-client wrk hyperfine tmux curl procps psmisc socat)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Distribution services must not hold the ports or chains the tests use.
for svc in nginx haproxy varnish etcd; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

# etcd: the fleet tests start their own members (every URL on ports of their own, data in a
# temp dir); the distribution's etcd was stopped above. Check that both binaries run.
etcd --version >/dev/null 2>&1 || die "etcd does not run (package etcd-server)"
ETCDCTL_API=3 etcdctl version >/dev/null 2>&1 || die "etcdctl does not run (package etcd-client)"

# dockerd, in 198.18.0.0/15 only.
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd --host unix:///var/run/docker.sock \
    --bip 198.18.0.1/24 \
    --default-address-pool base=198.18.128.0/17,size=24 \
    --default-ulimit nofile=20000:20000 \
    >/var/log/dockerd.log 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || die "dockerd did not come up; see /var/log/dockerd.log"
fi

# The test image: busybox-static with httpd serving /www (no registry is reachable).
if ! docker image inspect elastic-test/web:1 >/dev/null 2>&1; then
  log "building image elastic-test/web:1"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/www" "$tmp/rootfs/tmp" "$tmp/rootfs/etc"
  cp /bin/busybox "$tmp/rootfs/bin/busybox"
  for a in sh httpd nc sleep echo cat hostname ls ps kill wget printf env true false; do
    ln -sf busybox "$tmp/rootfs/bin/$a"
  done
  echo ok >"$tmp/rootfs/www/index.html"
  echo ok >"$tmp/rootfs/www/healthz"
  echo 'root:x:0:0:root:/:/bin/sh' >"$tmp/rootfs/etc/passwd"
  tar -C "$tmp/rootfs" -c . | docker import \
    -c 'CMD ["/bin/sh","-c","hostname > /www/id; exec httpd -f -p 80 -h /www"]' \
    -c 'EXPOSE 80' -c 'ENV PATH=/bin' - elastic-test/web:1 >/dev/null
  # A second image, for "other containers" in selection tests.
  tar -C "$tmp/rootfs" -c . | docker import -c 'CMD ["/bin/sleep","3600"]' -c 'ENV PATH=/bin' - elastic-test/other:1 >/dev/null
fi

modprobe br_netfilter 2>/dev/null || true
modprobe nf_conntrack 2>/dev/null || true
log "ready: $(docker version --format 'docker {{.Server.Version}}') $(haproxy -v | head -1 | cut -d' ' -f1-3) $(nginx -v 2>&1)"
