#!/usr/bin/env bash
# `octet serve` with the official `openai` Python client (tools/tests/serve_openai.py).
# Builds the binary (as `cargo test` does: a no-op after it), converts all-MiniLM-L6-v2
# and the tiny T5 fixture to int8, and runs pytest in a venv with `openai` cached under
# target/serve-openai/ (~15 s to create the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
work="$target/serve-openai"
mkdir -p "$work"
# The binary `cargo test` builds for the integration tests (target/debug/octet, optimized by
# [profile.test]); a no-op after `cargo test --workspace`.
cargo test -p octet-tools --test serve --no-run
bin="$target/debug/octet"
if [ ! -x "$work/venv/bin/pytest" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet "openai>=1.50" "pytest>=8"
fi
source_dir="$(bash scripts/fetch-minilm.sh | tail -n 1)"
[ -f "$work/minilm.octet" ] || "$bin" convert "$source_dir" -o "$work/minilm.octet" --quant int8 -q
[ -f "$work/t5.octet" ] || "$bin" convert tests/fixtures/t5/relu/model -o "$work/t5.octet" --quant int8 -q
OCTET_BIN="$bin" OCTET_MINILM="$work/minilm.octet" OCTET_T5="$work/t5.octet" \
  "$work/venv/bin/pytest" -q tools/tests/serve_openai.py "$@"
