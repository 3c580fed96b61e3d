#!/usr/bin/env bash
# Makes the TFLite T5 encoders that tests/tflite_t5.rs imports: two seeded random T5 encoders
# (gated GELU + Dense, and ReLU) with a [32128, 64] token table and one int32 input [1, 64],
# each as float32 (~8.5 MB) and dynamic-range int8 (~2.2 MB), built by TensorFlow's converter
# (scripts/reference/make_tflite_t5.py), plus the same weights as sentence-transformers folders.
# No real T5 weights ship in any package, so the model is built: the TF venv
# (scripts/reference/setup-tf-venv.sh) plus ~20 s of conversion. The build is deterministic:
# each .tflite is checked against the sha256 recorded here and in
# tests/fixtures/tflite_t5/reference.json.
#
# Output: ${OCTET_CACHE:-$HOME/.cache/octet}/sources/t5-tflite/. The folder path is the last
# line on stdout; progress goes to stderr. Idempotent: with every file present and verified
# nothing is installed or built.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
source "$repo/scripts/lib/verify.sh"

SHA256S="t5-gated-f32.tflite=44a70ca95afcecf617e2bb7f88187a6d635c1577ab4833dbaf6d33358ee8fc5b
t5-gated-int8.tflite=bfa60a0836fcdaa10d552f15f8998ad53f937f689c735ffb2081ec7f19efc4bf
t5-relu-f32.tflite=56402acf06460c5f6073847f1ba00b3ca7e9cb1462078c0f0b3def5fb4ed48b5
t5-relu-int8.tflite=35114081d9e3adc42e0445d6816475a5164abf8b071500283163206b65ca3ede"

python="${PYTHON:-python3}"
cache="${OCTET_CACHE:-$HOME/.cache/octet}"
dest="$cache/sources/t5-tflite"

verify() {
  local required="" variant file
  for variant in gated relu; do
    for file in config.json model.safetensors tokenizer.json; do required="$required t5-$variant-hf/$file"; done
  done
  verify_folder "$1" "$required" "$(echo "$SHA256S" | tr '=' ' ')"
}

if [ -d "$dest" ] && verify "$dest" 2>/dev/null; then
  echo "TFLite T5 encoders already in cache" >&2
  echo "$dest"
  exit 0
fi

venv="$(bash "$repo/scripts/reference/setup-tf-venv.sh" | tail -n 1)"
mkdir -p "$cache/sources"
work="$(mktemp -d "$cache/sources/.fetch-tflite-t5.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" "$repo/scripts/reference/make_tflite_t5.py" build --out "$work" >&2
verify "$work"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
echo "TFLite T5 encoders built and verified" >&2
echo "$dest"
