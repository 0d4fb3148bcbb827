#!/usr/bin/env bash
# Builds the Python package from this checkout and runs its pytest suite (python/tests) and
# the course notebook. The wheel is built in the dev profile, which optimises lmkit and its
# dependencies (Cargo.toml) and shares target/ with `cargo test`, so after the Rust tests it
# compiles only the extension crate. The venv lives under target/, outside git.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LMKIT_PY_VENV:-target/py-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q "maturin>=1.5,<2" "pytest>=7" numpy pandas tqdm nbclient nbformat ipykernel
rm -rf target/wheels-dev
(cd python && "../$VENV/bin/maturin" build --profile dev --interpreter "../$PY" -o ../target/wheels-dev)
"$PY" -m pip install -q --force-reinstall --no-deps target/wheels-dev/lmkit-*.whl
# The CLI the tests compare with.
cargo build -q -p lmkit-cli
"$PY" -m ipykernel install --sys-prefix --name lmkit-test >/dev/null
# From the repository root, so that python/lmkit (the sources) does not shadow the install.
LMKIT_NOTEBOOK_KERNEL=lmkit-test "$PY" -m pytest -q python/tests "$@"
