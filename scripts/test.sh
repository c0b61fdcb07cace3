#!/usr/bin/env bash
# The one test entry (`npm test`): installs what is missing, builds, checks types and style, then runs the
# unit, integration and end-to-end tiers. vitest's global setup starts 3-member ZooKeeper, etcd and Consul
# clusters on 127.0.0.1 once per run and stops them at the end. Then the Node matrix: the unit and e2e tiers and
# the proxy integration tests on each line of NODE_LINES (default "22 24 26": the lines package.json's engines
# names beside the machine's), each line's node fetched once into .node-cache/<line> and run first in PATH.
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
# with arguments (a file, a filter), only the machine's Node runs them
if [ "$#" -gt 0 ]; then
  npx vitest run "$@"
  exit 0
fi

overall=0
declare -A results
began=$SECONDS
npx vitest run || overall=1
results[$(node --version)]="$([ "$overall" -eq 0 ] && echo passed || echo FAILED) (all tiers, $((SECONDS - began)) s)"

# the matrix runs every unit and e2e file and the proxy integration files: named one by one, for one vitest run
mapfile -t matrix_files < <(
  find test -name '*.test.ts' -o -name '*.test.tsx' | grep -v '\.integration\.test\.' | sort
  find test/proxy -name '*.integration.test.ts' | sort
)
for line in ${NODE_LINES-22 24 26}; do
  bin="$PWD/.node-cache/$line/node_modules/.bin"
  if [ ! -x "$bin/node" ]; then
    echo "test: fetching Node $line into .node-cache/$line" >&2
    npm install --prefix ".node-cache/$line" --no-audit --no-fund --no-save "node@$line" >/dev/null
  fi
  version="$("$bin/node" --version)"
  echo "test: Node $version: unit and e2e tiers, proxy integration tests" >&2
  began=$SECONDS
  if PATH="$bin:$PATH" SVC_TEST_NODE_LINE="$line" "$bin/node" node_modules/vitest/vitest.mjs run "${matrix_files[@]}"; then
    results[$version]="passed (unit, e2e, proxy integration: $((SECONDS - began)) s)"
  else
    results[$version]="FAILED (unit, e2e, proxy integration: $((SECONDS - began)) s)"
    overall=1
  fi
done

echo "test: results by Node line" >&2
for version in $(printf '%s\n' "${!results[@]}" | sort -V); do
  printf '  %-10s %s\n' "$version" "${results[$version]}" >&2
done
echo "test: $((SECONDS / 60)) min $((SECONDS % 60)) s in all" >&2
exit "$overall"
