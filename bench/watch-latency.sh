#!/usr/bin/env bash
# svc watch latency per backend: p50/p99 from a registration to its line on the watcher's stdout (100 changes).
# Goal: p99 under 100 ms. Needs `npm run build`; starts throwaway 3-member clusters unless SVC_BENCH_ZK,
# SVC_BENCH_ETCD, SVC_BENCH_CONSUL name existing ones. Bounded by SVC_BENCH_TIMEOUT (default 600 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f oclif.manifest.json ] && [ -d dist/commands ] || { echo "bench: run npm run build first" >&2; exit 1; }
exec timeout "${SVC_BENCH_TIMEOUT:-600}" npx tsx bench/watch-latency.ts
