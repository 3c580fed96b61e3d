#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` for the serving benchmark (benches/serve/run.py) from the
# sources vendored in the llama-cpp-python sdist that benches/peers/setup.sh extracts, with the
# same flags (ggml's native CPU flags minus AMX, see setup.sh), and converts all-MiniLM-L6-v2 to
# a Q8_0 GGUF with the sdist's convert_hf_to_gguf.py. Not run in CI.
#
# Usage: benches/serve/setup-llama-server.sh      (after benches/peers/setup.sh)
#   LLAMA_ROOT   where setup.sh put the sdist (default <repo>/target/bench-llama)
#   JOBS         parallel compile jobs (default 1: leaves a core to the rest of the machine)
# Prints "server=<path>" and "gguf=<path>" last. Idempotent; the build takes ~15-30 min on one core.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
llama_root="${LLAMA_ROOT:-$repo/target/bench-llama}"
src="$llama_root/llama_cpp_python-0.3.36/vendor/llama.cpp"
build="$llama_root/build-server"
venv="${OCTET_REF_VENV:-$repo/.venv-ref}"
if [ ! -d "$src" ]; then
  echo "no llama.cpp sources at $src: run benches/peers/setup.sh first (or set LLAMA_ROOT)" >&2
  exit 1
fi
cmake="$(command -v cmake || true)"
[ -x "$venv/bin/cmake" ] && cmake="$venv/bin/cmake"
[ -n "$cmake" ] || { echo "no cmake: run benches/peers/setup.sh (it installs cmake in its venv)" >&2; exit 1; }

if [ ! -x "$build/bin/llama-server" ]; then
  noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  "$cmake" -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="$noamx" -DCMAKE_CXX_FLAGS="$noamx" \
    -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON >&2
  "$cmake" --build "$build" --target llama-server -j "${JOBS:-1}" >&2
fi

gguf="$repo/target/bench-peers/minilm-q8_0.gguf"
if [ ! -f "$gguf" ]; then
  mkdir -p "$(dirname "$gguf")"
  source_dir="$(bash "$repo/scripts/fetch-minilm.sh" | tail -n 1)"
  py="$venv/bin/python"
  "$py" -c 'import gguf' 2>/dev/null || "$py" -m pip install --no-input --disable-pip-version-check "$src/gguf-py" >&2
  "$py" "$src/convert_hf_to_gguf.py" "$source_dir" --outtype q8_0 --outfile "$gguf" >&2
fi
echo "server=$build/bin/llama-server"
echo "gguf=$gguf"
