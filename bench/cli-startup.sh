#!/usr/bin/env bash
# Start-up cost of the CLI, per Node line: median wall time (and CPU time, user + system, which a busy machine
# disturbs less) of `svc resolve X --backend local`, `svc --version` and `node -e 0`, beside `etcdctl get` on a
# real etcd (one member on 127.0.0.1). Goals: `svc resolve` at most 60 ms on Node 24 and 100 ms on Node 20.
# Lines: the machine's node and those of NODE_LINES (default "22 24 26") fetched in .node-cache/ (`npm test`
# fetches them). Knobs: RUNS (21), SVC_BENCH_INSTRUCTIONS (1: also count instructions under callgrind, ~15 s a line).
# Run after `npm run build`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${RUNS:-21}"
work="$(mktemp -d)"
etcd_pid=""
cleanup() {
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
[ -f oclif.manifest.json ] || { echo "bench: run npm run build first" >&2; exit 1; }

# prints "<wall ms> <cpu ms>", the medians of $runs runs of the command
medians() {
  local walls=() cpus=() start end cpu
  for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    # `svc resolve X` finds no X and exits 1: the status does not matter here, the time does
    cpu=$( (/usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null || true) | tail -1 | awk '{printf "%.0f", ($1 + $2) * 1000}')
    end=$(date +%s%N)
    walls+=($(((end - start) / 1000)))
    cpus+=("$cpu")
  done
  local wall cpu_median
  wall=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}')
  cpu_median=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$wall $cpu_median"
}

free_port() {
  node -e "const s=require('node:net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

row() { printf '  %-34s %8s ms wall %6s ms cpu%s\n' "$1" "$2" "$3" "${4:-}"; }

if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
  client=$(free_port)
  peer=$(free_port)
  etcd --name bench --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" --initial-cluster "bench=http://127.0.0.1:$peer" \
    >"$work/etcd.log" 2>&1 &
  etcd_pid=$!
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$client" put X 1 >/dev/null 2>&1 && break
    sleep 0.1
  done
  read -r etcd_wall etcd_cpu < <(ETCDCTL_API=3 medians etcdctl --endpoints "127.0.0.1:$client" get X)
  echo "peer: etcdctl get X on a real etcd ($(etcd --version | head -1)), runs: $runs (medians)"
  row 'etcdctl get X' "$etcd_wall" "$etcd_cpu"
else
  etcd_wall=""
  echo "bench: etcd or etcdctl missing (scripts/install-backends.sh installs them): no peer figure" >&2
fi

nodes=(node)
for line in ${NODE_LINES-22 24 26}; do
  bin=".node-cache/$line/node_modules/.bin/node"
  if [ -x "$bin" ]; then nodes+=("$bin"); else echo "bench: no Node $line in .node-cache/$line (npm test fetches it)" >&2; fi
done

for node in "${nodes[@]}"; do
  version=$("$node" --version)
  read -r node_wall node_cpu < <(medians "$node" -e 0)
  read -r version_wall version_cpu < <(SVC_HOME="$work/home" medians "$node" bin/run.js --version)
  read -r resolve_wall resolve_cpu < <(SVC_HOME="$work/home" medians "$node" bin/run.js resolve X --backend local)
  goal=""
  case "$version" in
    v24.*) goal=60 ;;
    v20.*) goal=100 ;;
  esac
  echo "Node $version"
  row 'node -e 0' "$node_wall" "$node_cpu"
  row 'svc --version' "$version_wall" "$version_cpu"
  verdict=""
  if [ -n "$goal" ]; then
    verdict=$(awk -v a="$resolve_wall" -v g="$goal" 'BEGIN {printf "  (goal <= %d ms: %s, %.2fx the goal)", g, (a <= g ? "met" : "NOT met"), a / g}')
  fi
  row 'svc resolve X --backend local' "$resolve_wall" "$resolve_cpu" "$verdict"
  ratios=$(awk -v a="$resolve_wall" -v b="$node_wall" 'BEGIN {printf "svc resolve / node -e 0: %.2fx", a / b}')
  [ -n "$etcd_wall" ] && ratios+=$(awk -v a="$resolve_wall" -v b="$etcd_wall" 'BEGIN {printf "; svc resolve / etcdctl get: %.1fx", a / b}')
  echo "  $ratios"
done

# instructions executed (valgrind's callgrind), which another process on the machine does not change: the figure to
# compare changes by on a shared machine; wall time above is what a user sees
if command -v valgrind >/dev/null && [ "${SVC_BENCH_INSTRUCTIONS:-1}" = 1 ]; then
  instructions() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | awk '/Collected/ {printf "%.0f", $4 / 1e6}'
  }
  echo "instructions (millions, callgrind, one run each; SVC_BENCH_INSTRUCTIONS=0 skips)"
  for node in "${nodes[@]}"; do
    base=$(instructions "$node" -e 0)
    ver=$(SVC_HOME="$work/home" instructions "$node" bin/run.js --version)
    res=$(SVC_HOME="$work/home" instructions "$node" bin/run.js resolve X --backend local)
    printf '  Node %-9s node -e 0 %5sM  svc --version %5sM  svc resolve %5sM  (%s)\n' "$("$node" --version)" "$base" "$ver" "$res" \
      "$(awk -v a="$res" -v b="$base" 'BEGIN {printf "%.2fx node -e 0", a / b}')"
  done
else
  echo "bench: valgrind missing (apt-get install valgrind): no instruction counts" >&2
fi

# what the resolve path loads: packages required (CommonJS) or imported (ES modules); plugins load only for their
# commands (help, version, autocomplete) and not-found only on an unknown command on a terminal
trace="$work/trace"
: >"$trace.esm"
SVC_HOME="$work/home" SVC_TRACE_FILE="$trace" SVC_IMPORT_TRACE_FILE="$trace.esm" node -r ./test/fixtures/trace-requires.cjs \
  --import ./bench/trace-imports.mjs bin/run.js resolve X --backend local >/dev/null 2>&1 || true
loaded=$({ cat "$trace"; echo; cat "$trace.esm"; } | grep -v "^$" | sort -u | tr '\n' ' ')
printf 'packages loaded by svc resolve: %s\n' "$loaded"
plugins=$({ cat "$trace"; echo; cat "$trace.esm"; } | sort -u | grep -E '^(@oclif/plugin-|prom-client$)' || true)
if [ -n "$plugins" ]; then
  printf 'FAIL: the resolve path loads %s\n' "$(echo "$plugins" | tr '\n' ' ')"
  exit 1
fi
printf 'plugins or prom-client on the resolve path: none\n'
