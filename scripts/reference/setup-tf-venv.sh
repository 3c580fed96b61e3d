#!/usr/bin/env bash
# Creates the Python venv that builds the TFLite MiniLM files (scripts/reference/make_tflite_minilm.py):
# TensorFlow (CPU) for the model and the converter, ai-edge-litert for the interpreter, safetensors
# to read the source weights, tokenizers for the T5 fixture's token ids (make_tflite_t5.py). About 1.6 GB; no torch.
#
# Usage: scripts/reference/setup-tf-venv.sh [VENV_DIR]     (default: <repo>/.venv-tf, or $OCTET_TF_VENV)
# Idempotent: an existing venv that already imports the pinned versions is left alone.
# The venv path is the last line on stdout; pip's output goes to stderr.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-${OCTET_TF_VENV:-$repo/.venv-tf}}"

# Pinned versions (see /work/shared/MODELS.md and tests/fixtures/tflite/README.md).
TENSORFLOW=2.21.0
LITERT=2.3.0
TOKENIZERS=0.23.3

python="${PYTHON:-python3}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m
assert m.version("tensorflow-cpu") == "$TENSORFLOW", m.version("tensorflow-cpu")
assert m.version("ai-edge-litert") == "$LITERT", m.version("ai-edge-litert")
import safetensors, numpy
assert m.version("tokenizers") == "$TOKENIZERS", m.version("tokenizers")
PY
then
  echo "venv already complete: $venv" >&2
  echo "$venv"
  exit 0
fi

"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --no-input --disable-pip-version-check --progress-bar off \
  "tensorflow-cpu==$TENSORFLOW" "ai-edge-litert==$LITERT" "tokenizers==$TOKENIZERS" safetensors numpy </dev/null >&2
"$venv/bin/python" -c 'import importlib.metadata as m; print("tensorflow-cpu", m.version("tensorflow-cpu"), "ai-edge-litert", m.version("ai-edge-litert"), "numpy", m.version("numpy"))' >&2
echo "$venv"
