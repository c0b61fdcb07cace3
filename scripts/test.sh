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

[ -d node_modules/@oclif/core ] || npm install --no-audit --no-fund
npm run build
npx tsc -p tsconfig.test.json --noEmit
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --list-different .; exit 1; }
exec npx vitest run "$@"
