#!/usr/bin/env bash
# Creates the Python venv used to generate the reference fixtures in tests/fixtures/ with
# sentence-transformers (fp32 PyTorch). Not run in CI: torch pulls the CUDA wheels (~6 GB).
#
# Usage: scripts/reference/setup-venv.sh [VENV_DIR]     (default: <repo>/.venv-ref, or $OCTET_REF_VENV)
# Idempotent: an existing venv that already imports the pinned versions is left alone.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-${OCTET_REF_VENV:-$repo/.venv-ref}}"

# Pinned versions (see /work/shared/MODELS.md and tests/fixtures/README.md).
TORCH=2.15.0
SENTENCE_TRANSFORMERS=6.2.0
TRANSFORMERS=5.23.0

python="${PYTHON:-python3}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" - <<PY 2>/dev/null
import torch, transformers, sentence_transformers, numpy, scipy
assert torch.__version__.split("+")[0] == "$TORCH", torch.__version__
assert transformers.__version__ == "$TRANSFORMERS", transformers.__version__
assert sentence_transformers.__version__ == "$SENTENCE_TRANSFORMERS", sentence_transformers.__version__
PY
then
  echo "venv already complete: $venv" >&2
  echo "$venv"
  exit 0
fi

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --upgrade pip </dev/null
"$venv/bin/python" -m pip install --no-input \
  "torch==$TORCH" \
  "transformers==$TRANSFORMERS" \
  "sentence-transformers==$SENTENCE_TRANSFORMERS" \
  numpy scipy </dev/null
"$venv/bin/python" -c 'import torch, transformers, sentence_transformers, numpy, scipy; print("torch", torch.__version__, "transformers", transformers.__version__, "sentence-transformers", sentence_transformers.__version__, "numpy", numpy.__version__, "scipy", scipy.__version__)' >&2
echo "$venv"
