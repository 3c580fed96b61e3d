#!/usr/bin/env bash
# Makes the masked, fixed-length TFLite MiniLM files that tests/tflite_masked.rs imports: the
# three-input form MediaPipe's text embedder and Model Maker export (input_word_ids, input_mask,
# input_type_ids, all int32 [1, 128]), float32 and dynamic-range int8, each also with the TFLite
# Support metadata MediaPipe's MetadataWriter writes (a BERT tokenizer, vocab.txt packed in).
# Built by scripts/reference/make_tflite_masked_minilm.py in the TF venv (shared with
# scripts/fetch-tflite-minilm.sh) and the mediapipe venv (shared with
# scripts/fetch-mediapipe-minilm.sh): ~30 s of conversion and ~10 s of metadata when not cached.
# The build is deterministic on one machine (the zip entries' time is pinned), but TensorFlow's
# converter writes different bytes on different CPUs with the same pinned versions: the first
# digest of each file is the build on an AMD EPYC (Zen 4) VM, the second on an Intel Xeon with AMX
# (2026-12-07; both reproduce run after run). All four files are checked against these;
# tests/fixtures/tflite_masked/reference.json records the two without metadata (its LiteRT
# reference was run on the Zen 4 build, and the test holds the other build to it too).
#
# Output: ${OCTET_CACHE:-$HOME/.cache/octet}/sources/all-MiniLM-L6-v2-tflite-masked/ (the path
# is the last line on stdout; progress goes to stderr). Idempotent: with every file present and
# verified nothing is installed or built.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
source "$repo/scripts/lib/verify.sh"

FILES=(
  "minilm-masked-f32.tflite e92f8bf09a91779bb4dcad88fb13791a8289c527338da5458ff3479e134c75d0|d169d699daa1d7691d50092f00b5300a69efe2efe974bb7ad1f14cec68f94adb"
  "minilm-masked-int8.tflite c778366062bfbc557406e5bacd2454fd999cbe6fbbd0af233f3941af2aab2286|da0f10d7c2c31c1adb52aaae6e8a751247004c9753617f90ad1f0a1d97867db6"
  "minilm-masked-f32-metadata.tflite 4ddf6df21a078ba9375ac360592e20f204796971b963496d3eb8ce98a46db8a4|5a94ee4888234dfc87c09af46d05a35c1c8496184aef8ff91ac127b22ae12111"
  "minilm-masked-int8-metadata.tflite 7feda3de6a123fd7d8181bb1e6a558fa5a1f2137ce6b0016bcfacfcec487cbd3|a90c367996ffad4b3b1b41b5f405f1b3bb2a9cc4451b35d0eef0186debcc6b88"
)

cache="${OCTET_CACHE:-$HOME/.cache/octet}"
dest="$cache/sources/all-MiniLM-L6-v2-tflite-masked"

verify() {
  verify_folder "$1" "" "$(printf '%s\n' "${FILES[@]}")"
}

if [ -d "$dest" ] && verify "$dest" 2>/dev/null; then
  echo "masked TFLite MiniLM already in cache" >&2
  echo "$dest"
  exit 0
fi

bash "$repo/scripts/fetch-minilm.sh" >&2
tf_venv="$(bash "$repo/scripts/reference/setup-tf-venv.sh" | tail -n 1)"
mp_venv="$(bash "$repo/scripts/reference/setup-mediapipe-venv.sh" | tail -n 1)"
mkdir -p "$cache/sources"
work="$(mktemp -d "$cache/sources/.fetch-tflite-masked-minilm.XXXXXX")"
trap 'rm -rf "$work"' EXIT
OCTET_CACHE="$cache" "$tf_venv/bin/python" "$repo/scripts/reference/make_tflite_masked_minilm.py" build --out "$work" >&2
OCTET_CACHE="$cache" "$mp_venv/bin/python" "$repo/scripts/reference/make_tflite_masked_minilm.py" metadata --out "$work" >&2
verify "$work"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
echo "masked TFLite MiniLM built and verified" >&2
echo "$dest"
