#!/usr/bin/env bash
# Installs the real servers the tests use: ZooKeeper, etcd, Consul 1.8.7, Docker, busybox-static; and wrk and
# nginx-light for bench/proxy.sh (nginx is never left running as a system service: the bench runs its own); zsh and
# fish for the completion test, docker-compose to validate examples/, and promtool (Debian's prometheus package) to
# check the agent's and the proxy's /metrics.
# Idempotent; needs root and apt-get. Consul is unpacked into .backends/consul (not installed system-wide).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
backends="$root/.backends"
mkdir -p "$backends"

log() { printf 'install-backends: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (apt-get is needed); run: sudo $0"
  exit 1
fi
command -v apt-get >/dev/null || { log "apt-get not found: install the backends by hand (see DESIGN.md)"; exit 1; }

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update() {
  if [ "$apt_updated" -eq 0 ]; then
    apt-get update -qq >&2
    apt_updated=1
  fi
}

missing=()
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v tmux >/dev/null || missing+=(tmux)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v zsh >/dev/null || missing+=(zsh)
command -v fish >/dev/null || missing+=(fish)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v promtool >/dev/null || missing+=(prometheus)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v dig >/dev/null || missing+=(dnsutils)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v chromium >/dev/null || missing+=(chromium)

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # the package may start nginx as a service (on port 80); the bench starts a private one instead
  if [ -s /run/nginx.pid ]; then
    log "stopping the nginx service the package started"
    kill "$(cat /run/nginx.pid)" 2>/dev/null || true
  fi
fi

consul_bin="$backends/consul/usr/bin/consul"
if [ ! -x "$consul_bin" ]; then
  log "fetching consul 1.8.7 from Debian bullseye into $backends/consul"
  apt_dir="$backends/apt-bullseye"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  cat >"$apt_dir/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main
SRC
  apt_opts=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o "Dir::State::status=/dev/null"
  )
  apt-get "${apt_opts[@]}" update -qq >&2
  (cd "$apt_dir" && rm -f consul_*.deb && apt-get "${apt_opts[@]}" download consul >&2)
  deb="$(ls "$apt_dir"/consul_*.deb | head -n 1)"
  rm -rf "$backends/consul"
  dpkg -x "$deb" "$backends/consul"
fi

consul_version="$("$consul_bin" version)"
log "ready: zookeeper $(dpkg-query -W -f='${Version}' zookeeper), etcd $(dpkg-query -W -f='${Version}' etcd-server), ${consul_version%%$'\n'*}, docker.io $(dpkg-query -W -f='${Version}' docker.io)"
