#!/usr/bin/env bash
# A/B of two lmkit builds beside PyTorch, interleaved in one run: for each round, build A, then
# build B, then the Python reference, on the same shapes. For "is the change slower?" questions
# (a refactor, a kernel), where separate runs on this shared machine drift by 10-40%.
#
#   bench/ab.sh BIN_A BIN_B train|infer [ROUNDS]
#
# BIN_A / BIN_B are lmkit binaries (e.g. a build of the previous commit and target/release/lmkit).
# train: one training step, MiniLM-L6 shape, batch 64 x 48, dropout 0.1 and 0 ($DROPOUTS);
# infer: encoder inference, fp32 and int8 ($PRECISIONS). Rows go to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
a="$1"; b="$2"; task="$3"; rounds="${4:-2}"
py=$(scripts/ref-venv.sh)
batch="${BATCH:-64}"; seq="${SEQ:-48}"
out="bench/results/$(date +%Y-%m-%d-%H%M)-ab-$task.jsonl"
mkdir -p bench/results
: > "$out"
tag() { "$py" -c 'import json,sys; [print(json.dumps({**json.loads(l), "build": sys.argv[1]})) for l in sys.stdin if l.strip()]' "$1"; }
for r in $(seq 1 "$rounds"); do
  if [ "$task" = train ]; then
    for p in ${DROPOUTS:-0.1 0}; do
      "$a" bench train --shape minilm --batch "$batch" --seq "$seq" --dropout "$p" --iters 5 --json | tag A | tee -a "$out"
      "$b" bench train --shape minilm --batch "$batch" --seq "$seq" --dropout "$p" --iters 5 --json | tag B | tee -a "$out"
      "$py" bench/torch_bench.py train --shape minilm --batch "$batch" --seq "$seq" --dropout "$p" --iters 5 | tag torch | tee -a "$out"
    done
  else
    for q in ${PRECISIONS:-fp32 int8}; do
      flag=(); if [ "$q" = int8 ]; then flag=(--int8); fi
      "$a" bench infer --shape minilm --batch "$batch" --seq "$seq" --iters 10 "${flag[@]}" --json | tag A | tee -a "$out"
      "$b" bench infer --shape minilm --batch "$batch" --seq "$seq" --iters 10 "${flag[@]}" --json | tag B | tee -a "$out"
      "$py" bench/torch_bench.py infer --shape minilm --batch "$batch" --seq "$seq" --iters 10 "${flag[@]}" | tag torch | tee -a "$out"
    done
  fi
done
"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
key = "precision" if rows[0]["task"] == "infer" else "dropout"
for g in sorted({str(r.get(key)) for r in rows}):
    sel = [r for r in rows if str(r.get(key)) == g]
    med = {b: statistics.median(r["samples_per_s"] for r in sel if r["build"] == b) for b in ("A", "B", "torch")}
    per = {b: [round(r["samples_per_s"], 1) for r in sel if r["build"] == b] for b in ("A", "B", "torch")}
    rss = {b: max(r.get("peak_rss_mib", 0) for r in sel if r["build"] == b) for b in ("A", "B", "torch")}
    print(f"\n{rows[0]['task']}, {key} {g}: samples/s per round A {per['A']}, B {per['B']}, torch {per['torch']}")
    print(f"  median A {med['A']:.1f}, B {med['B']:.1f}, torch {med['torch']:.1f}; B/A {med['B'] / med['A']:.3f}; "
          f"A/torch {med['A'] / med['torch']:.2f}x, B/torch {med['B'] / med['torch']:.2f}x; peak RSS MiB A {rss['A']:.0f}, B {rss['B']:.0f}, torch {rss['torch']:.0f}")
PY
