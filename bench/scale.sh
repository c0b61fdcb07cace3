#!/usr/bin/env bash
# svc at scale, per backend: register-all time, first snapshot of `svc watch --json` and `svc proxy`, RSS, idle
# CPU over 10 s, backend connections, change -> watch line and change -> proxy route p50/p99, CPU per change, and
# `svc resolve` of one service, for N = 0, 5,000 and 10,000 instances over N/5 services. Beside them:
# ZooKeeper as the scale reference, and `consul watch -type=services` on Consul.
# Knobs: SVC_BENCH_BACKENDS (default local,zk,etcd,consul), SVC_BENCH_SIZES (default 0,5000,10000),
# SVC_BENCH_CHANGES (default 50), SVC_BENCH_TIMEOUT (default 2400 s). Needs `npm run build`; starts throwaway
# 3-member clusters (src/lib/cluster) and stops them at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f oclif.manifest.json ] && [ -d dist/commands ] || { echo "bench: run npm run build first" >&2; exit 1; }
exec timeout "${SVC_BENCH_TIMEOUT:-2400}" npx tsx bench/scale.ts
