#!/usr/bin/env bash
# The Python package (bindings/python/): builds the wheel with maturin, installs it into a
# fresh venv with pytest, numpy, pyarrow and ray, and runs bindings/python/tests on the real
# all-MiniLM-L6-v2 (and on EmbeddingGemma-300m when its source folder is already cached, as
# after `cargo test --workspace`, which fetches it for tests/embeddinggemma.rs).
#
# Cost: the wheel is built in the dev profile made equal to [profile.test] (opt-level 3,
# line tables), so it reuses what `cargo test --workspace` compiled in target/debug: only
# pyo3, numpy and octet-python are compiled here. maturin's own venv is cached under
# target/python-tests/; the test venv is made anew on every run (pip's download cache is
# reused). One local Ray cluster is started, by tests/test_ray.py.
# Benchmarks want `maturin build --release` instead (benches/peers/python.py does that).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
work="$target/python-tests"
mkdir -p "$work"
pip_flags=(--quiet --no-input --disable-pip-version-check)

# The command line (the reference vectors, the converted models): the binary `cargo test`
# builds for the integration tests; a no-op after `cargo test --workspace`.
cargo test -p octet-tools --test serve --no-run
bin="$target/debug/octet"

echo "== building the wheel (maturin)"
if [ ! -x "$work/build-venv/bin/maturin" ]; then
  python3 -m venv "$work/build-venv"
  "$work/build-venv/bin/pip" install "${pip_flags[@]}" "maturin>=1.9,<2"
fi
rm -rf "$work/wheels"
CARGO_PROFILE_DEV_OPT_LEVEL=3 CARGO_PROFILE_DEV_DEBUG=line-tables-only \
  "$work/build-venv/bin/maturin" build -m bindings/python/Cargo.toml -o "$work/wheels" </dev/null
wheel="$(ls "$work"/wheels/octet-*.whl)"

echo "== a fresh venv with $(basename "$wheel"), pytest, numpy, pyarrow, pandas, ray"
rm -rf "$work/venv"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install "${pip_flags[@]}" "$wheel" "pytest>=8" numpy pyarrow pandas "ray[data]>=2.9"

echo "== models"
minilm_source="$(bash scripts/fetch-minilm.sh | tail -n 1)"
# Converted again whenever the binary is newer: the tests compare octet.convert's file with it.
if [ ! -f "$work/minilm.octet" ] || [ "$bin" -nt "$work/minilm.octet" ]; then
  "$bin" convert "$minilm_source" -o "$work/minilm.octet" --quant int8 -q
fi
gemma_source="${OCTET_CACHE:-$HOME/.cache/octet}/sources/embeddinggemma-300m"
gemma=""
if [ -f "$gemma_source/model.safetensors" ]; then
  if [ ! -f "$work/gemma.octet" ] || [ "$bin" -nt "$work/gemma.octet" ]; then
    "$bin" convert "$gemma_source" -o "$work/gemma.octet" --quant int8 -q
  fi
  gemma="$work/gemma.octet"
else
  echo "EmbeddingGemma is not cached: its Python test is skipped"
fi

echo "== pytest"
# Ray's session folder: a short path (its socket paths must stay under 108 bytes), removed after.
ray_tmp="$(mktemp -d /tmp/octet-ray.XXXXXX)"
trap 'rm -rf "$ray_tmp"' EXIT
cd bindings/python
OCTET_BIN="$bin" OCTET_MINILM="$work/minilm.octet" OCTET_MINILM_SOURCE="$minilm_source" OCTET_GEMMA="$gemma" \
  RAY_TMPDIR="$ray_tmp" RAY_USAGE_STATS_ENABLED=0 \
  "$work/venv/bin/pytest" -q -p no:cacheprovider --basetemp="$work/pytest-tmp" tests "$@"
