#!/usr/bin/env bash
# Sets up the peers of the benchmark runner (benches/peers/run.py). Not run in CI (torch alone is ~6 GB).
#
# 1. The reference venv (scripts/reference/setup-venv.sh: torch, transformers, sentence-transformers),
#    plus onnx, onnxruntime, matplotlib, cmake, llama-cpp-python's small pure-Python dependencies and
#    sentencepiece (convert_hf_to_gguf.py reads EmbeddingGemma's tokenizer.model with it).
#    The peers live in that same venv (default <repo>/.venv-ref, gitignored by /.venv*): a second venv
#    would need its own 6 GB torch for the ONNX export and the PyTorch peer.
# 2. llama.cpp from the sources vendored in the llama-cpp-python sdist (pip download, no other network),
#    built with cmake as shared libraries (ggml's native CPU flags, as a llama.cpp user would build it)
#    into <repo>/target/bench-llama/ (never committed). The runner loads them through the sdist's own
#    ctypes binding (LLAMA_CPP_LIB_PATH) and converts models with its convert_hf_to_gguf.py + gguf-py.
#
# Usage: benches/peers/setup.sh [VENV_DIR]     Prints "venv=..." and "llama=..." (or "llama=" plus the
# reason on stderr when the llama.cpp build fails: the runner then skips llama.cpp and says why).
# Idempotent. Takes ~1 min with the venv present, plus ~5-10 min for the llama.cpp build on 2 cores.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$(bash "$repo/scripts/reference/setup-venv.sh" "${1:-${OCTET_REF_VENV:-$repo/.venv-ref}}" | tail -n 1)"
py="$venv/bin/python"

# Pinned peer versions (see /work/shared/MODELS.md).
ONNX=1.23.2
ONNXRUNTIME=1.31.1
LLAMA_CPP_PYTHON=0.3.36

if ! "$py" - <<PY 2>/dev/null
import onnx, onnxruntime, matplotlib, cmake, diskcache, jinja2, sentencepiece
assert onnx.__version__ == "$ONNX" and onnxruntime.__version__ == "$ONNXRUNTIME"
PY
then
  "$py" -m pip install --no-input --disable-pip-version-check "onnx==$ONNX" "onnxruntime==$ONNXRUNTIME" \
    matplotlib cmake diskcache jinja2 typing-extensions sentencepiece </dev/null >&2
fi

llama_root="$repo/target/bench-llama"
src="$llama_root/llama_cpp_python-$LLAMA_CPP_PYTHON"
build="$llama_root/build"
mkdir -p "$llama_root"
build_llama() {
  if [ ! -d "$src/vendor/llama.cpp" ]; then
    # Only this package from source: its build dependencies (cmake, ninja) as wheels, or pip
    # would bootstrap cmake from source just to read the metadata.
    "$py" -m pip download --no-input --disable-pip-version-check --no-deps --no-binary llama-cpp-python \
      -d "$llama_root/sdist" "llama-cpp-python==$LLAMA_CPP_PYTHON" </dev/null >&2
    tar -xzf "$llama_root/sdist/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz" -C "$llama_root"
  fi
  if [ ! -f "$build/bin/libllama.so" ] || ! grep -q "mno-amx-int8" "$build/CMakeCache.txt"; then
    # Native flags minus AMX: ggml's AMX matmul (ggml_backend_amx_mul_mat) segfaults on Q8_0 here on the
    # first batch (seen with gdb); without it ggml uses its AVX-512 VNNI Q8_0 kernels and repacking.
    # gcc lets an explicit -mno-X win over -march=native whatever their order.
    noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    "$venv/bin/cmake" -S "$src/vendor/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_FLAGS="$noamx" -DCMAKE_CXX_FLAGS="$noamx" \
      -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
      -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
      -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF >&2
    "$venv/bin/cmake" --build "$build" --target llama -j 2 >&2
  fi
  # The sdist's gguf-py, for convert_hf_to_gguf.py.
  "$py" -c 'import gguf' 2>/dev/null || "$py" -m pip install --no-input --disable-pip-version-check \
    "$src/vendor/llama.cpp/gguf-py" </dev/null >&2
  LLAMA_CPP_LIB_PATH="$build/bin" PYTHONPATH="$src" "$py" -c 'import llama_cpp; print(llama_cpp.__version__)' >&2
}
echo "venv=$venv"
if (build_llama); then
  echo "llama=$src $build/bin"
else
  echo "llama.cpp build failed (see above); the runner will skip llama.cpp" >&2
  echo "llama="
fi
