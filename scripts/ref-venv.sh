#!/usr/bin/env bash
# Creates (once per machine) the throw-away Python reference environment used to make parity
# fixtures and to run side-by-side benchmarks: PyTorch + transformers + sentence-transformers.
# It lives outside the repository and is never used by CI.
# Usage: scripts/ref-venv.sh            -> prints the venv's python path (creating it if missing)
set -euo pipefail
VENV="${LMKIT_REF_VENV:-$HOME/.cache/lmkit/ref-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, transformers, sentence_transformers, accelerate' 2>/dev/null; then
  echo "creating reference venv in $VENV (large download: torch)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >&2
  "$VENV/bin/pip" install -q torch transformers accelerate sentence-transformers safetensors numpy scipy scikit-learn datasets pandas >&2
fi
echo "$VENV/bin/python"
