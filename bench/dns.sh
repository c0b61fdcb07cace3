#!/usr/bin/env bash
# svc dns beside Consul's DNS on the same registrations (50 services x 5 in a throwaway `consul agent -dev`):
# dnsperf queries/s and p99 for each, the ratio svc/consul, and change-to-answer latency (median of 20). Needs
# `npm run build`, dnsperf (scripts/install-backends.sh) and Consul (.backends, or SVC_CONSUL_BIN). Knobs:
# SVC_BENCH_DURATION (10 s), SVC_BENCH_ROUNDS (3), SVC_BENCH_SERVICES (50), SVC_BENCH_INSTANCES (5),
# SVC_BENCH_CHANGES (20), SVC_BENCH_PIN (1 with 2+ cores). Bounded by SVC_BENCH_TIMEOUT (default 300 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f oclif.manifest.json ] && [ -d dist/commands ] || { echo "bench: run npm run build first" >&2; exit 1; }
command -v dnsperf >/dev/null || { echo "bench: dnsperf is missing: apt-get install dnsperf (or scripts/install-backends.sh)" >&2; exit 1; }
exec timeout "${SVC_BENCH_TIMEOUT:-300}" npx tsx bench/dns.ts
