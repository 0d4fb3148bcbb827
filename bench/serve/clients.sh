#!/usr/bin/env bash
# Real clients against `lmkit serve`: the official `openai` Python package (embeddings, chat,
# streamed chat) and curl on the TEI routes. Starts the server, prints what each client got.
# Not part of CI. Needs MiniLM and SmolLM2 in the store (`lmkit fetch ...`).
set -euo pipefail
cd "$(dirname "$0")/../.."
py=$(scripts/ref-venv.sh)
"$py" -c 'import openai' 2>/dev/null || "$(dirname "$py")/pip" install -q openai >&2
cargo build --release -q -p lmkit-cli
bin="${CARGO_TARGET_DIR:-target}/release/lmkit"
embed=sentence-transformers/all-MiniLM-L6-v2; llm=HuggingFaceTB/SmolLM2-135M-Instruct
$bin serve --model $embed --model $llm --port 8092 2>/tmp/lmkit-clients.log &
pid=$!; trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do curl -sf http://127.0.0.1:8092/health >/dev/null && break; sleep 0.5; done
echo "== openai package"
"$py" bench/serve/openai_client.py http://127.0.0.1:8092 $embed $llm
echo "== curl"
set -x
curl -s http://127.0.0.1:8092/embed -H 'Content-Type: application/json' \
  -d '{"inputs": "I have a dream."}' | cut -c1-80; echo
curl -s http://127.0.0.1:8092/zero-shot -H 'Content-Type: application/json' \
  -d '{"inputs": "The match went to penalties.", "candidate_labels": ["sports", "politics", "cooking"]}'; echo
curl -s http://127.0.0.1:8092/tokenize -H 'Content-Type: application/json' -d '{"inputs": "Hello world!"}'; echo
curl -sN http://127.0.0.1:8092/v1/chat/completions -H 'Content-Type: application/json' \
  -d '{"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "temperature": 0, "stream": true}'
curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8092/embed -H 'Content-Type: application/json' -d '{"inputs": ""}'
curl -s http://127.0.0.1:8092/metrics | grep '^lmkit_requests_total'
