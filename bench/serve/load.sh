#!/usr/bin/env bash
# Load benchmark: `lmkit serve` against the Python baseline (FastAPI + uvicorn +
# sentence-transformers / transformers, bench/serve/baseline.py) on this machine, one server at a
# time, driven by wrk with single-sentence requests of emotion test sentences. Prints requests/s,
# p50/p99 latency and the servers' peak RSS at each concurrency, and the ratios. Not part of CI.
#
#   bench/serve/load.sh [embed|predict|both] [SECONDS]
#   CONCURRENCY="1 8 64" THREADS=2 bench/serve/load.sh both 15
#   LMKIT_ARGS="--precision bf16" bench/serve/load.sh embed   # extra flags for lmkit serve
set -euo pipefail
cd "$(dirname "$0")/../.."
what="${1:-both}"; secs="${2:-15}"
conc="${CONCURRENCY:-1 8 64}"; threads="${THREADS:-2}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
py=$(scripts/ref-venv.sh)
"$py" -c 'import fastapi, uvicorn' 2>/dev/null || "$(dirname "$py")/pip" install -q fastapi uvicorn >&2
cargo build --release -q -p lmkit-cli
bin="${CARGO_TARGET_DIR:-target}/release/lmkit"
embed_dir=$($bin fetch sentence-transformers/all-MiniLM-L6-v2 | sed 's/.* -> //')
clf="${CLASSIFIER:-lmkit/sentiment-sst2}"
sentences=$(mktemp); cut -d";" -f1 ../shared/data/emotion/test.txt > "$sentences"
out="bench/results/$(date +%Y-%m-%d-%H%M)-serve.jsonl"; mkdir -p bench/results; : > "$out"

wait_up() { for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.5; done; echo "server on $1 did not start" >&2; return 1; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# run IMPL PORT PID ROUTE
drive() {
  local impl=$1 port=$2 pid=$3 route=$4
  # Warm-up: the first requests pay for lazy initialisation on both sides.
  wrk -t1 -c4 -d3s -s bench/serve/requests.lua "http://127.0.0.1:$port" -- "$route" "$sentences" >/dev/null
  for c in $conc; do
    local t=$(( c < 2 ? 1 : 2 ))
    line=$(wrk -t"$t" -c"$c" -d"${secs}s" --timeout 30s -s bench/serve/requests.lua \
      "http://127.0.0.1:$port" -- "$route" "$sentences" | grep '^RESULT')
    echo "$impl $route c=$c $line peak_rss_mib=$(peak_rss_mib "$pid")"
    echo "{\"impl\":\"$impl\",\"route\":\"$route\",\"concurrency\":$c,$(echo "$line" | sed -E 's/RESULT //; s/([a-z0-9_]+)=([0-9.]+)/"\1":\2,/g; s/,$//'),\"peak_rss_mib\":$(peak_rss_mib "$pid")}" >> "$out"
  done
}

routes=(); case "$what" in embed) routes=(/embed);; predict) routes=(/predict);; *) routes=(/embed /predict);; esac
for route in "${routes[@]}"; do
  if [ "$route" = /predict ]; then
    clf_dir=$($bin fetch "$clf" | sed 's/.* -> //')
    lm_args=(--model "$clf_dir"); py_args=(--classifier "$clf_dir")
  else
    lm_args=(--model "$embed_dir"); py_args=()
  fi
  RAYON_NUM_THREADS=$threads $bin serve "${lm_args[@]}" ${LMKIT_ARGS:-} --port 8090 --max-concurrent-requests 1024 2>/tmp/lmkit-serve.log &
  pid=$!; wait_up 8090; drive "lmkit${LMKIT_ARGS:+ $LMKIT_ARGS}" 8090 $pid "$route"; kill -TERM $pid; wait $pid || true
  "$py" bench/serve/baseline.py --embed-model "$embed_dir" "${py_args[@]}" --port 8091 --threads "$threads" 2>/tmp/py-serve.log &
  pid=$!; wait_up 8091; drive python 8091 $pid "$route"; kill -TERM $pid; wait $pid || true
done
rm -f "$sentences"
echo "results: $out"
# Ratios at each concurrency: lmkit / python.
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["impl"], r["route"], r["concurrency"]): r for r in rows}
print(f"{'impl':28} {'route':10} {'c':>3} {'lmkit rps':>10} {'python rps':>10} {'ratio':>6} {'p99 lmkit':>10} {'p99 py':>8} {'rss lmkit':>9} {'rss py':>7}")
for (impl, route, c), r in sorted(by.items()):
    if not impl.startswith("lmkit") or ("python", route, c) not in by:
        continue
    p = by[("python", route, c)]
    print(f"{impl:28} {route:10} {c:>3} {r['rps']:>10.1f} {p['rps']:>10.1f} {r['rps']/p['rps']:>5.2f}x {r['p99_ms']:>9.1f}ms {p['p99_ms']:>6.1f}ms {r['peak_rss_mib']:>7.0f}MiB {p['peak_rss_mib']:>5.0f}MiB")
PY
