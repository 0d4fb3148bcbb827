#!/usr/bin/env bash
# Side-by-side benchmark: lmkit vs PyTorch + transformers on identical shapes, A/B interleaved
# in one run on this machine, printing samples/s and the ratio. Creates the Python reference
# venv on first use (scripts/ref-venv.sh). Not part of CI.
#
#   bench/compare.sh infer [ROUNDS]      # all-MiniLM-L6-v2 embeddings, batch 64 x 48 tokens
set -euo pipefail
cd "$(dirname "$0")/.."
task="${1:-infer}"; rounds="${2:-3}"
model="${MODEL:-sentence-transformers/all-MiniLM-L6-v2}"
batch="${BATCH:-64}"; seq="${SEQ:-48}"; iters="${ITERS:-10}"
py=$(scripts/ref-venv.sh)
cargo build --release -q -p lmkit-cli
bin=target/release/lmkit
dir=$($bin fetch "$model" | sed 's/.* -> //')
out="bench/results/$(date +%Y-%m-%d)-$task.jsonl"
mkdir -p bench/results
: > "$out"
for r in $(seq 1 "$rounds"); do
  $bin bench "$task" --model "$model" --batch "$batch" --seq "$seq" --iters "$iters" --json | tee -a "$out"
  "$py" bench/torch_bench.py "$task" --model-dir "$dir" --batch "$batch" --seq "$seq" --iters "$iters" | tee -a "$out"
done
"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["impl"], []).append(r)
l = statistics.median(r["samples_per_s"] for r in by["lmkit"])
t = statistics.median(r["samples_per_s"] for r in by["pytorch"])
lr = max(r["peak_rss_mib"] for r in by["lmkit"]); tr = max(r["peak_rss_mib"] for r in by["pytorch"])
print(f"\n{rows[0]['task']}: batch {rows[0]['batch']} x {rows[0]['seq']} tokens, {len(by['lmkit'])} rounds each, interleaved")
print(f"  lmkit   {l:8.1f} samples/s   peak RSS {lr:7.0f} MiB")
print(f"  pytorch {t:8.1f} samples/s   peak RSS {tr:7.0f} MiB   (torch {by['pytorch'][0]['torch']})")
print(f"  ratio lmkit/pytorch: {l / t:.2f}x")
PY
