#!/usr/bin/env bash
# The README's test command: the Rust workspace's tests, then the Python package's.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
bash scripts/test-python.sh
