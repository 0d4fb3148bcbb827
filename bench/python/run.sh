#!/usr/bin/env bash
# The Python API beside transformers + torch (bench/python/bench.py). Builds a release wheel
# into its own venv (`pip install ./python`, as a user would) and uses the reference venv of
# scripts/ref-venv.sh for torch. Usage: bash bench/python/run.sh [--tasks sentiment,embed,train]
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${LMKIT_BENCH_VENV:-target/py-bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if [ -z "${LMKIT_WHEEL:-}" ]; then
  "$VENV/bin/pip" install -q ./python
else
  "$VENV/bin/pip" install -q --force-reinstall "$LMKIT_WHEEL"
fi
REF="$(bash scripts/ref-venv.sh)"
DATA="${LMKIT_BENCH_DATA:-$(cd .. && pwd)/shared/data/emotion}"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores" >&2
LMKIT_BENCH_DATA="$DATA" OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2 \
  "$VENV/bin/python" bench/python/bench.py --lmkit-python "$VENV/bin/python" --torch-python "$REF" "$@"
