#!/usr/bin/env bash
# The one test entry (`npm test`): installs what is missing, builds, checks types and style, then runs the
# unit, integration and end-to-end tiers. vitest's global setup starts 3-member ZooKeeper, etcd and Consul
# clusters on 127.0.0.1 once per run and stops them at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  bash scripts/install-backends.sh
else
  echo "test: not root; assuming ZooKeeper, etcd and Consul are installed (see scripts/install-backends.sh)" >&2
fi

# the agent's tests need a Docker daemon: start one when none answers, and stop it at the end
started_dockerd=""
stop_dockerd() {
  # the agent's daemon-restart test replaces the daemon, so stop whichever dockerd runs now
  if [ -n "$started_dockerd" ]; then
    local pids
    pids="$(pidof dockerd || true)"
    [ -n "$pids" ] && kill $pids 2>/dev/null
    for _ in $(seq 50); do pidof dockerd >/dev/null || break; sleep 0.2; done
  fi
}
trap stop_dockerd EXIT
if command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    mkdir -p .test-run
    dockerd >.test-run/dockerd.log 2>&1 &
    started_dockerd=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { echo "test: dockerd did not start; see .test-run/dockerd.log" >&2; exit 1; }
    echo "test: started dockerd (pid $started_dockerd)" >&2
  fi
fi

[ -d node_modules/@oclif/core ] || npm install --no-audit --no-fund
npm run build
npx tsc -p tsconfig.test.json --noEmit
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --list-different .; exit 1; }
npx vitest run "$@"
