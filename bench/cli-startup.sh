#!/usr/bin/env bash
# Start-up cost of the CLI: median wall time of `svc resolve X --backend local` beside `node -e 0`.
# Goal: at most 3x. Run after `npm run build`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${RUNS:-21}"
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT

median_ms() {
  local times=() start end
  for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    times+=($(((end - start) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

[ -f oclif.manifest.json ] || { echo "run npm run build first" >&2; exit 1; }
node_ms=$(median_ms node -e 0)
svc_ms=$(SVC_HOME="$home" median_ms node bin/run.js resolve X --backend local)
help_ms=$(SVC_HOME="$home" median_ms node bin/run.js --version)
ratio=$(awk -v a="$svc_ms" -v b="$node_ms" 'BEGIN {printf "%.2f", a / b}')
printf 'runs: %s (medians)\n' "$runs"
printf '%-40s %8s ms\n' 'node -e 0' "$node_ms" 'svc --version' "$help_ms" 'svc resolve X --backend local' "$svc_ms"
printf 'ratio svc resolve / node: %sx (goal <= 3x)\n' "$ratio"

# what the resolve path loads: packages required (CommonJS) or imported (ES modules); plugins load only for their
# commands (help, version, autocomplete) and not-found only on an unknown command on a terminal
trace="$home/trace"
: >"$trace.esm"
SVC_HOME="$home" SVC_TRACE_FILE="$trace" SVC_IMPORT_TRACE_FILE="$trace.esm" node -r ./test/fixtures/trace-requires.cjs --import ./bench/trace-imports.mjs \
  bin/run.js resolve X --backend local >/dev/null 2>&1 || true
loaded=$({ cat "$trace"; echo; cat "$trace.esm"; } | grep -v "^$" | sort -u | tr '\n' ' ')
printf 'packages loaded by svc resolve: %s\n' "$loaded"
plugins=$({ cat "$trace"; echo; cat "$trace.esm"; } | sort -u | grep -E '^(@oclif/plugin-|prom-client$)' || true)
if [ -n "$plugins" ]; then
  printf 'FAIL: the resolve path loads %s\n' "$(echo "$plugins" | tr '\n' ' ')"
  exit 1
fi
printf 'plugins or prom-client on the resolve path: none\n'
