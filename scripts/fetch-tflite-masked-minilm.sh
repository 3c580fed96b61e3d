#!/usr/bin/env bash
# Makes the masked, fixed-length TFLite MiniLM files that tests/tflite_masked.rs imports: the
# three-input form MediaPipe's text embedder and Model Maker export (input_word_ids, input_mask,
# input_type_ids, all int32 [1, 128]), float32 and dynamic-range int8, each also with the TFLite
# Support metadata MediaPipe's MetadataWriter writes (a BERT tokenizer, vocab.txt packed in).
# Built by scripts/reference/make_tflite_masked_minilm.py in the TF venv (shared with
# scripts/fetch-tflite-minilm.sh) and the mediapipe venv (shared with
# scripts/fetch-mediapipe-minilm.sh): ~30 s of conversion and ~10 s of metadata when not cached.
# The build is deterministic (the zip entries' time is pinned): all four files are checked
# against the sha256 recorded here; tests/fixtures/tflite_masked/reference.json records the two
# without metadata.
#
# Output: ${OCTET_CACHE:-$HOME/.cache/octet}/sources/all-MiniLM-L6-v2-tflite-masked/ (the path
# is the last line on stdout; progress goes to stderr). Idempotent: with every file present and
# verified nothing is installed or built.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
source "$repo/scripts/lib/verify.sh"

FILES=(
  "minilm-masked-f32.tflite e92f8bf09a91779bb4dcad88fb13791a8289c527338da5458ff3479e134c75d0"
  "minilm-masked-int8.tflite c778366062bfbc557406e5bacd2454fd999cbe6fbbd0af233f3941af2aab2286"
  "minilm-masked-f32-metadata.tflite 4ddf6df21a078ba9375ac360592e20f204796971b963496d3eb8ce98a46db8a4"
  "minilm-masked-int8-metadata.tflite 7feda3de6a123fd7d8181bb1e6a558fa5a1f2137ce6b0016bcfacfcec487cbd3"
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
