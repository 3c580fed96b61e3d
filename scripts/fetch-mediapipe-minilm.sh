#!/usr/bin/env bash
# Makes the MediaPipe-style text-embedder file that tests/mediapipe.rs imports without
# --tokenizer: the int8 TFLite MiniLM (scripts/fetch-tflite-minilm.sh) with TFLite Support
# metadata naming a BERT tokenizer and MiniLM's vocab.txt packed in the file, written by
# mediapipe's metadata classes (scripts/reference/make_mediapipe_minilm.py). No registry ships
# such a file, so it is built: the mediapipe venv (scripts/reference/setup-mediapipe-venv.sh,
# ~400 MB) plus ~10 s. The build is deterministic (the zip entry's time is pinned): the file is
# checked against the sha256 recorded here and in tests/fixtures/mediapipe/README.md.
#
# Output: ${OCTET_CACHE:-$HOME/.cache/octet}/sources/all-MiniLM-L6-v2-mediapipe/
# (minilm-int8-metadata.tflite). The folder path is the last line on stdout; progress goes to
# stderr. Idempotent: with the file present and verified nothing is installed or built.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
source "$repo/scripts/lib/verify.sh"

SHA256="70460d37f19f44ce50546ccc195d9872b0370d82cc29e9e81c0add71f6bf0a35"
NAME="minilm-int8-metadata.tflite"

cache="${OCTET_CACHE:-$HOME/.cache/octet}"
dest="$cache/sources/all-MiniLM-L6-v2-mediapipe"

verify() {
  verify_folder "$1" "" "$NAME $SHA256"
}

if [ -d "$dest" ] && verify "$dest" 2>/dev/null; then
  echo "MediaPipe MiniLM already in cache" >&2
  echo "$dest"
  exit 0
fi

bash "$repo/scripts/fetch-minilm.sh" >&2
bash "$repo/scripts/fetch-tflite-minilm.sh" >&2
venv="$(bash "$repo/scripts/reference/setup-mediapipe-venv.sh" | tail -n 1)"
mkdir -p "$cache/sources"
work="$(mktemp -d "$cache/sources/.fetch-mediapipe-minilm.XXXXXX")"
trap 'rm -rf "$work"' EXIT
OCTET_CACHE="$cache" "$venv/bin/python" "$repo/scripts/reference/make_mediapipe_minilm.py" build --out "$work" >&2
verify "$work"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
echo "MediaPipe MiniLM built and verified" >&2
echo "$dest"
