#!/usr/bin/env bash
# Side-by-side benchmark: lmkit vs PyTorch + transformers on identical shapes, A/B interleaved
# in one run on this machine, printing samples/s and the ratio. Creates the Python reference
# venv on first use (scripts/ref-venv.sh). Not part of CI.
#
#   bench/compare.sh infer [ROUNDS]      # all-MiniLM-L6-v2 embeddings, batch 64 x 48 tokens
#   bench/compare.sh train [ROUNDS]      # one training step, 6-way head, dropout $DROPOUT (0.1)
#   bench/compare.sh tokenize [ROUNDS]   # emotion train split, batched map (datasets + fast tokenizer)
#   bench/compare.sh pipeline [ROUNDS]   # sentiment pipeline on 1000 emotion test sentences,
#                                        # $CLASSIFIER (default lmkit/sentiment-sst2), batch 32
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
bin=target/release/lmkit
if [ "$task" = pipeline ]; then model="${CLASSIFIER:-lmkit/sentiment-sst2}"; fi
if [ "$task" = generate ]; then model="${LLM:-HuggingFaceTB/SmolLM2-135M-Instruct}"; fi
if [ "$task" = seq2seq ]; then
  dir="${LMKIT_HOME:-$HOME/.cache/lmkit}/bench/t5-small-random"
  "$py" bench/seq2seq_bench.py --model-dir "$dir" --create
else
  dir=$($bin fetch "$model" | sed 's/.* -> //')
fi
out="bench/results/$(date +%Y-%m-%d)-$task.jsonl"
mkdir -p bench/results
: > "$out"
for r in $(seq 1 "$rounds"); do
  if [ "$task" = pipeline ]; then
    texts=$(mktemp); head -n "${SENTENCES:-1000}" ../shared/data/emotion/test.txt | cut -d";" -f1 > "$texts"
    $bin bench pipeline --model "$dir" --sentences "${SENTENCES:-1000}" --batch 32 --iters 3 --json | tee -a "$out"
    "$py" bench/pipeline_bench.py --model-dir "$dir" --texts "$texts" --batch 32 --iters 3 | tee -a "$out"
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
    $bin bench train --model "$model" --batch "$batch" --seq "$seq" --dropout "${DROPOUT:-0.1}" --iters "${ITERS:-5}" --json | tee -a "$out"
    "$py" bench/torch_bench.py train --model-dir "$dir" --batch "$batch" --seq "$seq" --dropout "${DROPOUT:-0.1}" --iters "${ITERS:-5}" | tee -a "$out"
  else
    $bin bench "$task" --model "$model" --batch "$batch" --seq "$seq" --iters "$iters" --json | tee -a "$out"
    "$py" bench/torch_bench.py "$task" --model-dir "$dir" --batch "$batch" --seq "$seq" --iters "$iters" | tee -a "$out"
  fi
done
"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
task = rows[0]["task"]
keys = {"tokenize": ["rows_per_s"], "generate": ["prompt_tok_per_s", "tok_per_s"],
        "seq2seq": ["tok_per_s"]}.get(task, ["samples_per_s"])
ours = [r for r in rows if r["impl"] == "lmkit"]
ref = [r for r in rows if r["impl"] != "lmkit"]
for key in keys:
    l = statistics.median(r[key] for r in ours)
    t = statistics.median(r[key] for r in ref)
    print(f"\n{task}: {len(ours)} rounds each, interleaved ({key})")
    print(f"  lmkit            {l:9.1f}   peak RSS {max(r.get('peak_rss_mib', 0) for r in ours):7.0f} MiB")
    print(f"  {ref[0]['impl']:<16} {t:9.1f}   peak RSS {max(r.get('peak_rss_mib', 0) for r in ref):7.0f} MiB")
    print(f"  ratio lmkit/{ref[0]['impl']}: {l / t:.2f}x")
PY
