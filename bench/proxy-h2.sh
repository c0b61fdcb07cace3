#!/usr/bin/env bash
# svc proxy over HTTP/2 beside nginx, in one run on 127.0.0.1: h2load over TLS against nginx (ssl http2, 1 worker)
# and svc proxy --workers 1 --tls-listen, both in front of the same 2 HTTP/1.1 upstreams; and a grpc-js unary load
# client against a grpc-js server directly and through svc's h2c listener. Prints req/s, p99, svc/nginx (goal >= 0.5)
# and svc/direct for gRPC. Needs `npm run build`, h2load (nghttp2-client), nginx and openssl. Knobs:
# SVC_BENCH_DURATION (8 s), SVC_BENCH_CONNECTIONS (20), SVC_BENCH_STREAMS (10 per connection), SVC_BENCH_ROUNDS (3),
# SVC_BENCH_GRPC_CONCURRENCY (50), SVC_BENCH_PIN (1 with 2+ cores: the proxies on the
# last core). Bounded by SVC_BENCH_TIMEOUT (default 600 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f oclif.manifest.json ] && [ -d dist/commands ] || { echo "bench: run npm run build first" >&2; exit 1; }
command -v h2load >/dev/null || { echo "bench: h2load is missing: apt-get install nghttp2-client" >&2; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "bench: nginx is missing: apt-get install nginx-light" >&2; exit 1; }
exec timeout "${SVC_BENCH_TIMEOUT:-600}" npx tsx bench/proxy-h2.ts
