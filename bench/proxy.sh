#!/usr/bin/env bash
# svc proxy throughput, tail latency and CPU per request beside its peers, in one run on 127.0.0.1: wrk against 2 upstreams directly,
# through nginx (Debian nginx-light, 1 worker, keepalive upstream), HAProxy (nbthread 1, http-reuse always), the article's express + http-proxy
# gateway, and through `svc proxy --workers 1` (local backend) on each engine (llhttp; node-http, the fallback).
# Prints req/s, p99, CPU µs per request (the proxy's /proc/PID/stat over the run) and the ratios against the goals
# (svc/nginx req/s >= 0.7, p99 <= 1.5x, CPU per request <= 1.4x). Needs `npm run build`, wrk, nginx and haproxy
# (scripts/install-backends.sh installs them). Knobs: SVC_BENCH_DURATION (10s), SVC_BENCH_CONNECTIONS (50),
# SVC_BENCH_THREADS (1), SVC_BENCH_ROUNDS (3, medians reported), SVC_BENCH_UPSTREAM (raw: canned responses; node:
# node:http), SVC_BENCH_PIN (1 with 2+ cores: the proxy alone on the last core, wrk and upstreams on the others).
# Bounded by SVC_BENCH_TIMEOUT (default 600 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f oclif.manifest.json ] && [ -d dist/commands ] || { echo "bench: run npm run build first" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench: wrk is missing: apt-get install wrk (or scripts/install-backends.sh)" >&2; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || {
  echo "bench: nginx is missing: apt-get install nginx-light (or scripts/install-backends.sh)" >&2
  exit 1
}
[ -x "${SVC_BENCH_HAPROXY:-/usr/sbin/haproxy}" ] || {
  echo "bench: haproxy is missing: apt-get install haproxy (or scripts/install-backends.sh)" >&2
  exit 1
}
exec timeout "${SVC_BENCH_TIMEOUT:-600}" npx tsx bench/proxy.ts
