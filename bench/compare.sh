#!/usr/bin/env bash
# Side-by-side benchmark: lmkit vs PyTorch + transformers on identical shapes, A/B interleaved
# in one run on this machine, printing samples/s and the ratio. Creates the Python reference
# venv on first use (scripts/ref-venv.sh). Not part of CI.
#
#   bench/compare.sh infer [ROUNDS]      # encoder + mean pooling, batch 64 x 48 tokens, random
#                                        # weights of $SHAPE (minilm: all-MiniLM-L6-v2; distilbert),
#                                        # fp32 and int8 ($PRECISIONS; PyTorch's int8 is
#                                        # quantize_dynamic), with lmkit int8 / PyTorch fp32 too;
#                                        # PRECISIONS="fp32 int8 bf16" adds bf16 (PyTorch:
#                                        # autocast)
#   bench/compare.sh train [ROUNDS]      # one training step, 6-way head, dropout 0.1 and 0
#                                        # ($DROPOUTS), same shapes
#   bench/compare.sh gemm [ROUNDS]       # fp32 matmul $N x $N x $N: the machine's matmul rate
#   bench/compare.sh epoch [ROUNDS]      # 1 epoch of fine-tuning on emotion end to end
#                                        # (all-MiniLM-L6-v2, batch 64, dynamic padding), with
#                                        # length-bucketed and random batches ($BUCKETING="1 0")
#   bench/compare.sh tokenize [ROUNDS]   # emotion train split, batched map (datasets + fast tokenizer)
#   bench/compare.sh pipeline [ROUNDS]   # sentiment pipeline on 1000 emotion test sentences,
#                                        # $CLASSIFIER (default lmkit/sentiment-sst2), batch 32,
#                                        # fp32 and int8 ($PRECISIONS) as for infer
#   bench/compare.sh seq2seq [ROUNDS]    # beam search (4 beams, 32 new tokens) on a random T5 of
#                                        # t5-small's shape (made on first use)
#   bench/compare.sh generate [ROUNDS]   # greedy generation, SmolLM2-135M-Instruct GGUF (f32),
#                                        # prompt tokens/s and new tokens/s (64 new, $NEW)
set -euo pipefail
cd "$(dirname "$0")/.."
task="${1:-infer}"; rounds="${2:-3}"
model="${MODEL:-sentence-transformers/all-MiniLM-L6-v2}"
batch="${BATCH:-64}"; seq="${SEQ:-48}"; iters="${ITERS:-10}"
py=$(scripts/ref-venv.sh)
cargo build --release -q -p lmkit-cli
bin="${CARGO_TARGET_DIR:-target}/release/lmkit"
if [ "$task" = pipeline ]; then model="${CLASSIFIER:-lmkit/sentiment-sst2}"; fi
if [ "$task" = generate ]; then model="${LLM:-HuggingFaceTB/SmolLM2-135M-Instruct}"; fi
shape="${SHAPE:-minilm}"
if [ -n "${MODEL:-}" ]; then src=(--model "$MODEL"); else src=(--shape "$shape"); fi
if [ "$task" = seq2seq ]; then
  dir="${LMKIT_HOME:-$HOME/.cache/lmkit}/bench/t5-small-random"
  "$py" bench/seq2seq_bench.py --model-dir "$dir" --create
elif [ "$task" = pipeline ] || [ "$task" = generate ] || [ "$task" = tokenize ] || [ "$task" = epoch ] || [ -n "${MODEL:-}" ]; then
  dir=$($bin fetch "$model" | sed 's/.* -> //')
fi
# The Python side of --shape / --model for infer and train.
if [ -n "${MODEL:-}" ]; then pysrc=(--model-dir "${dir:-}"); else pysrc=(--shape "$shape"); fi
# Date and time in the name: a second run on the same day must not overwrite the first.
out="bench/results/$(date +%Y-%m-%d-%H%M)-$task.jsonl"
mkdir -p bench/results
: > "$out"
for r in $(seq 1 "$rounds"); do
  if [ "$task" = pipeline ]; then
    texts=$(mktemp); head -n "${SENTENCES:-1000}" ../shared/data/emotion/test.txt | cut -d";" -f1 > "$texts"
    for q in ${PRECISIONS:-fp32 int8}; do
      flag=(); if [ "$q" = int8 ]; then flag=(--int8); fi
      $bin bench pipeline --model "$dir" --sentences "${SENTENCES:-1000}" --batch 32 --iters 3 "${flag[@]}" --json | tee -a "$out"
      "$py" bench/pipeline_bench.py --model-dir "$dir" --texts "$texts" --batch 32 --iters 3 "${flag[@]}" | tee -a "$out"
    done
  elif [ "$task" = seq2seq ]; then
    $bin bench seq2seq --model "$dir" --beams "${BEAMS:-4}" --new "${NEW:-32}" --iters 3 --json | tee -a "$out"
    "$py" bench/seq2seq_bench.py --model-dir "$dir" --beams "${BEAMS:-4}" --new "${NEW:-32}" --iters 3 | tee -a "$out"
  elif [ "$task" = generate ]; then
    $bin bench generate --model "$model" --new "${NEW:-64}" --iters 3 --json | tee -a "$out"
    "$py" bench/generate_bench.py --model-dir "$dir" --new "${NEW:-64}" --iters 3 | tee -a "$out"
  elif [ "$task" = tokenize ]; then
    $bin bench tokenize --model "$model" --iters 3 --json | tee -a "$out"
    "$py" bench/datasets_tokenize.py --tokenizer-dir "$dir" --iters 3 | tee -a "$out"
  elif [ "$task" = train ]; then
    for p in ${DROPOUTS:-0.1 0}; do
      $bin bench train "${src[@]}" --batch "$batch" --seq "$seq" --dropout "$p" --iters "${ITERS:-5}" --json | tee -a "$out"
      "$py" bench/torch_bench.py train "${pysrc[@]}" --batch "$batch" --seq "$seq" --dropout "$p" --iters "${ITERS:-5}" | tee -a "$out"
    done
  elif [ "$task" = epoch ]; then
    for b in ${BUCKETING:-1 0}; do
      run=$(mktemp -d); flag=(); pyflag=()
      if [ "$b" = 0 ]; then flag=(--no-bucketing); else pyflag=(--group-by-length); fi
      /usr/bin/time -f "%M" -o "$run/rss" $bin finetune --model "$model" --epochs 1 --output "$run" "${flag[@]}" 2> "$run/log" > /dev/null
      "$py" - "$run" "$b" <<'PY' | tee -a "$out"
import json, sys
run, b = sys.argv[1], sys.argv[2] == "1"
m = json.load(open(f"{run}/metrics.json")); h = m["history"][0]
print(json.dumps({"impl": "lmkit", "task": "epoch", "bucketing": b,
                  "train_s": h["seconds"], "train_samples_per_s": h["train_samples_per_s"],
                  "total_s": m["wall_seconds"], "val_accuracy": h["val_accuracy"],
                  "test_accuracy": m["accuracy"],
                  "peak_rss_mib": int(open(f"{run}/rss").read().split()[-1]) / 1024}))
PY
      rm -rf "$run"
      "$py" bench/finetune_epoch.py --model-dir "$dir" --data ../shared/data/emotion "${pyflag[@]}" | tee -a "$out"
    done
  elif [ "$task" = gemm ]; then
    $bin bench gemm --n "${N:-2048}" --iters 5 --json | tee -a "$out"
    "$py" bench/torch_bench.py gemm --n "${N:-2048}" --iters 5 | tee -a "$out"
  else
    for q in ${PRECISIONS:-fp32 int8}; do
      flag=(); pyflag=()
      if [ "$q" = int8 ]; then flag=(--int8); pyflag=(--int8); fi
      if [ "$q" = bf16 ]; then flag=(--precision bf16); pyflag=(--bf16); fi
      $bin bench infer "${src[@]}" --batch "$batch" --seq "$seq" --iters "$iters" "${flag[@]}" --json | tee -a "$out"
      "$py" bench/torch_bench.py infer "${pysrc[@]}" --batch "$batch" --seq "$seq" --iters "$iters" "${pyflag[@]}" | tee -a "$out"
    done
  fi
done
"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
task = rows[0]["task"]
keys = {"tokenize": ["rows_per_s"], "generate": ["prompt_tok_per_s", "tok_per_s"],
        "seq2seq": ["tok_per_s"], "gemm": ["gflop_per_s"],
        "epoch": ["train_samples_per_s", "total_s"]}.get(task, ["samples_per_s"])
# Training rows are compared per dropout setting, epochs per batching, inference per precision.
by_precision = task in ("infer", "pipeline")
group_key = "precision" if by_precision else {"epoch": "bucketing"}.get(task, "dropout")
groups = sorted({r.get(group_key) for r in rows},
                key=lambda d: str(d) if by_precision else (-1 if d is None else -d))
for group in groups:
    sel = [r for r in rows if r.get(group_key) == group]
    ours = [r for r in sel if r["impl"] == "lmkit"]
    ref = [r for r in sel if r["impl"] != "lmkit"]
    label = task if group is None else f"{task}, {group_key} {group}"
    if task == "epoch":
        for name, rs in [("lmkit", ours), (ref[0]["impl"], ref)]:
            print(f"  {name}: val accuracy {[round(r['val_accuracy'], 4) for r in rs]}, "
                  f"test accuracy {[round(r['test_accuracy'], 4) for r in rs]}")
    for key in keys:
        l = statistics.median(r[key] for r in ours)
        t = statistics.median(r[key] for r in ref)
        print(f"\n{label}: {len(ours)} rounds each, interleaved ({key})")
        for name, rs, v in [("lmkit", ours, l), (ref[0]["impl"], ref, t)]:
            extra = ""
            if "gflop_per_s" in rs[0] and key != "gflop_per_s":
                extra = f"   {statistics.median(r['gflop_per_s'] for r in rs):6.1f} GFLOP/s"
            rss = max(r.get("peak_rss_mib", 0) for r in rs)
            print(f"  {name:<16} {v:9.1f}   peak RSS {rss:7.0f} MiB{extra}")
        if key.endswith("_s") and not key.endswith("per_s"):
            print(f"  speed-up ({ref[0]['impl']} time / lmkit time): {t / l:.2f}x")
        else:
            print(f"  ratio lmkit/{ref[0]['impl']}: {l / t:.2f}x")
# The inference target is against PyTorch in fp32, whatever precision lmkit runs in.
f32 = [r["samples_per_s"] for r in rows if r["impl"] != "lmkit" and r.get("precision") == "fp32"]
for q in ("int8", "bf16"):
    ours = [r["samples_per_s"] for r in rows if r["impl"] == "lmkit" and r.get("precision") == q]
    if by_precision and ours and f32:
        print(f"\nlmkit {q} / {ref[0]['impl']} fp32: {statistics.median(ours) / statistics.median(f32):.2f}x")
PY
