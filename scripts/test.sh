#!/usr/bin/env bash
# The test command (README; `--quick` for the inner loop, see below): host tests of the whole workspace (optimized, see [profile.test]),
# the AVX2 path forced on top of the best one, and the NEON paths under qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
# `--quick`: the inner loop, a few minutes on 2 cores: every crate's unit tests (best kernels)
# and one real-model smoke test (MiniLM f32 and int8 against sentence-transformers). The full
# command below stays the README's test command and CI's.
if [ "${1:-}" = "--quick" ]; then
  echo "== quick: unit tests of every crate"
  cargo test --workspace --lib
  echo "== quick: the real MiniLM against sentence-transformers"
  cargo test -p octet-tests --test minilm -- f32_matches_sentence_transformers int8_stays_close_to_f32
  exit 0
fi
echo "== TFLite MiniLM files for tests/tflite.rs (TF venv ~1 min + conversion ~35 s when not cached)"
bash scripts/fetch-tflite-minilm.sh >/dev/null
echo "== TFLite T5 encoders for tests/tflite_t5.rs (~20 s of conversion when not cached)"
bash scripts/fetch-tflite-t5.sh >/dev/null
echo "== the T5 file with SentencePiece metadata for tests/tflite_t5.rs (~5 s when not cached)"
bash scripts/fetch-tflite-t5-spm.sh >/dev/null
echo "== MediaPipe-style MiniLM for tests/mediapipe.rs (mediapipe venv ~1 min + ~15 s when not cached)"
bash scripts/fetch-mediapipe-minilm.sh >/dev/null
echo "== masked three-input TFLite MiniLM for tests/tflite_masked.rs (~40 s of conversion when not cached)"
bash scripts/fetch-tflite-masked-minilm.sh >/dev/null
echo "== host tests, best kernels"
cargo test --workspace
echo "== octet serve with the official openai Python client (venv cached under target/)"
bash scripts/test-serve-openai.sh
echo "== the Python package: wheel (maturin), fresh venv, pytest with a local Ray cluster"
bash scripts/test-python.sh
echo "== octet-kernels with every x86 level below the best forced (avx512: VNNI on an AMX CPU)"
for level in scalar avx2 avx512; do
  OCTET_KERNEL=$level cargo test -p octet-kernels
done
echo "== the real MiniLM end to end on the AVX2 path"
OCTET_KERNEL=avx2 cargo test -p octet-tests --test minilm
echo "== NEON under qemu"
bash scripts/test-neon.sh
