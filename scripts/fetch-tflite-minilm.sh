#!/usr/bin/env bash
# Makes the TFLite versions of all-MiniLM-L6-v2 that tests/tflite.rs imports: float32 (90 MB)
# and dynamic-range int8 (23.5 MB), built by TensorFlow's converter from the safetensors
# weights (scripts/reference/make_tflite_minilm.py). No registry ships them, so they are
# built: the TF venv (scripts/reference/setup-tf-venv.sh, ~1.6 GB) plus ~35 s of conversion.
# The conversion is deterministic: both files are checked against the sha256 recorded here
# and in tests/fixtures/tflite/reference.json.
#
# Output: ${OCTET_CACHE:-$HOME/.cache/octet}/sources/all-MiniLM-L6-v2-tflite/ (minilm-f32.tflite,
# minilm-int8.tflite). The folder path is the last line on stdout; progress goes to stderr.
# Idempotent: with both files present and verified nothing is installed or built.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
source "$repo/scripts/lib/verify.sh"

SHA256_F32="3b1ffc90f6648b68673c18be463afc4bd54a45f457c6ea47b1967f9b4a4fa408"
SHA256_INT8="7e1b17a730cd4737371ec4b3b5f62499df78f7430455df541cb9ecce2f0c1b92"

python="${PYTHON:-python3}"
cache="${OCTET_CACHE:-$HOME/.cache/octet}"
dest="$cache/sources/all-MiniLM-L6-v2-tflite"

verify() {
  verify_folder "$1" "" "minilm-f32.tflite $SHA256_F32
minilm-int8.tflite $SHA256_INT8"
}

if [ -d "$dest" ] && verify "$dest" 2>/dev/null; then
  echo "TFLite MiniLM already in cache" >&2
  echo "$dest"
  exit 0
fi

bash "$repo/scripts/fetch-minilm.sh" >&2
venv="$(bash "$repo/scripts/reference/setup-tf-venv.sh" | tail -n 1)"
mkdir -p "$cache/sources"
work="$(mktemp -d "$cache/sources/.fetch-tflite-minilm.XXXXXX")"
trap 'rm -rf "$work"' EXIT
OCTET_CACHE="$cache" "$venv/bin/python" "$repo/scripts/reference/make_tflite_minilm.py" build --out "$work" >&2
verify "$work"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
echo "TFLite MiniLM built and verified" >&2
echo "$dest"
