#!/usr/bin/env bash
# Makes the T5 TFLite file with a SentencePiece tokenizer in its metadata that tests/tflite_t5.rs
# converts without --tokenizer: the int8 ReLU T5 of scripts/fetch-tflite-t5.sh with
# tests/fixtures/sentencepiece/unigram.model packed in by MediaPipe's metadata classes
# (scripts/reference/make_t5_sentencepiece_metadata.py, the mediapipe venv of
# scripts/fetch-mediapipe-minilm.sh): ~5 s when not cached. Deterministic (the zip entry's time
# is pinned): checked against the sha256 recorded here.
#
# Output: ${OCTET_CACHE:-$HOME/.cache/octet}/sources/t5-tflite-spm/ (t5-relu-int8-spm.tflite);
# the folder path is the last line on stdout, progress on stderr. Idempotent.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
source "$repo/scripts/lib/verify.sh"

SHA256="37a8ec05ec99527562d91caf16d2128b9c57dd84bc84f944a160c48262f7bbbf"
NAME="t5-relu-int8-spm.tflite"

cache="${OCTET_CACHE:-$HOME/.cache/octet}"
dest="$cache/sources/t5-tflite-spm"

verify() {
  verify_folder "$1" "" "$NAME $SHA256"
}

if [ -d "$dest" ] && verify "$dest" 2>/dev/null; then
  echo "T5 with SentencePiece metadata already in cache" >&2
  echo "$dest"
  exit 0
fi

t5="$(bash "$repo/scripts/fetch-tflite-t5.sh" | tail -n 1)"
venv="$(bash "$repo/scripts/reference/setup-mediapipe-venv.sh" | tail -n 1)"
mkdir -p "$cache/sources"
work="$(mktemp -d "$cache/sources/.fetch-tflite-t5-spm.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" "$repo/scripts/reference/make_t5_sentencepiece_metadata.py" "$t5/t5-relu-int8.tflite" "$work/$NAME" >&2
verify "$work"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
echo "T5 with SentencePiece metadata built and verified" >&2
echo "$dest"
