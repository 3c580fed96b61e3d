#!/usr/bin/env bash
# Creates the Python venv that writes the MediaPipe-style MiniLM file
# (scripts/reference/make_mediapipe_minilm.py): mediapipe, whose metadata writer classes and
# MetadataPopulator put TFLite Support metadata and associated files into a .tflite file, and
# whose TextEmbedder the script tries on the result. About 400 MB.
#
# mediapipe is installed without its declared dependencies: jax/jaxlib, sounddevice and
# sentencepiece are not used here, and opencv-contrib-python is replaced by the smaller
# opencv-python-headless (mediapipe's package __init__ imports cv2 and matplotlib). numpy stays
# below 2, which mediapipe 0.10.21 needs.
#
# Usage: scripts/reference/setup-mediapipe-venv.sh [VENV_DIR]
#        (default: <repo>/.venv-mediapipe, or $OCTET_MEDIAPIPE_VENV)
# Idempotent: an existing venv that already imports the pinned versions is left alone.
# The venv path is the last line on stdout; pip's output goes to stderr.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-${OCTET_MEDIAPIPE_VENV:-$repo/.venv-mediapipe}}"

# Pinned versions (see /work/shared/MODELS.md and tests/fixtures/mediapipe/README.md).
MEDIAPIPE=0.10.21
PINNED=(
  "numpy==1.26.4"
  "flatbuffers==25.12.19"
  "absl-py==2.5.1"
  "protobuf==4.25.9"
  "attrs==26.1.0"
  "opencv-python-headless==4.10.0.84"
  "matplotlib==3.9.4"
)

python="${PYTHON:-python3}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m
assert m.version("mediapipe") == "$MEDIAPIPE", m.version("mediapipe")
assert m.version("numpy") == "1.26.4", m.version("numpy")
from mediapipe.tasks.python.metadata import metadata
from mediapipe.tasks.python.metadata.metadata_writers import metadata_info
PY
then
  echo "venv already complete: $venv" >&2
  echo "$venv"
  exit 0
fi

pip_install() {
  "$venv/bin/python" -m pip install --no-input --disable-pip-version-check --progress-bar off "$@" </dev/null >&2
}
"$python" -m venv "$venv" >&2
pip_install --no-deps "mediapipe==$MEDIAPIPE"
pip_install "${PINNED[@]}"
"$venv/bin/python" -c 'import importlib.metadata as m; print("mediapipe", m.version("mediapipe"), "numpy", m.version("numpy"))' >&2
echo "$venv"
