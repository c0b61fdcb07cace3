#!/usr/bin/env bash
# svc agent latency per backend: container start -> resolvable and stop -> gone (p50/p99 over 30 containers),
# and 100 containers started at once. Goals: p99 < 250 ms; 100 containers < 10 s.
# Needs a Docker daemon and `npm run build`. zk, etcd and consul run as throwaway 1-member clusters unless
# SVC_BENCH_ZK / SVC_BENCH_ETCD / SVC_BENCH_CONSUL name existing ones; SVC_BENCH_BACKENDS=local,zk limits the list;
# SVC_BENCH_COUNT and SVC_BENCH_BURST change the counts. Bounded: each step times out, containers are removed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
docker info >/dev/null 2>&1 || { echo "bench: no Docker daemon answers (docker info); start dockerd" >&2; exit 1; }
[ -f oclif.manifest.json ] && [ -d dist/commands ] || { echo "bench: run npm run build first" >&2; exit 1; }
exec timeout "${SVC_BENCH_TIMEOUT:-900}" npx tsx bench/agent-latency.ts
