#!/usr/bin/env bash
# Fuzzes the readers of untrusted input with cargo fuzz (libFuzzer, nightly): each target runs
# for SECONDS (default 600), one after the other. A crash, hang (-timeout) or out-of-memory
# (-rss_limit_mb) stops the run with a non-zero status and leaves the input in
# fuzz/artifacts/TARGET/; turn it into a regression test (crates/octet/src/format/tests/untrusted.rs
# for model files) before fixing it.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   targets: model_file (a whole .octet file, up to an embedding), tokenizer_blob (a stored
#   tokenizer.json), tflite (a .tflite file through the reader and graph walk, when present).
#
# Seeds are made fresh, not committed: the small T5 fixture models converted with each recipe,
# the fixtures' tokenizer.json files, and a tiny TFLite BERT (make_tflite_fuzz_seeds.py), also with
# MediaPipe tokenizer metadata (make_mediapipe_minilm.py seed). The corpus grows in fuzz/corpus/TARGET (gitignored).
# Needs: rustup's nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(model_file tokenizer_blob)
  grep -q '^name = "tflite"' fuzz/Cargo.toml && targets+=(tflite)
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/fuzz-tools}"
cargo build --release -q -p octet-tools
octet="$CARGO_TARGET_DIR/release/octet"

seed_model_file() {
  local dir=fuzz/corpus/model_file
  mkdir -p "$dir"
  for variant in gated relu; do
    for quant in f32 int8-embeddings int8; do
      "$octet" convert "tests/fixtures/t5/$variant/model" -o "$dir/seed-t5-$variant-$quant.octet" --quant "$quant" -q
    done
  done
}

seed_tokenizer_blob() {
  local dir=fuzz/corpus/tokenizer_blob
  mkdir -p "$dir"
  for variant in gated relu; do
    cp "tests/fixtures/t5/$variant/model/tokenizer.json" "$dir/seed-t5-$variant.json"
  done
}

seed_tflite() {
  mkdir -p fuzz/corpus/tflite
  # A tiny BERT the importer recognises, in float32 and dynamic-range int8, written by
  # TensorFlow's converter (the TF venv of the TFLite tests, ~1 min to install when missing).
  local venv
  venv="$(bash scripts/reference/setup-tf-venv.sh)"
  "$venv/bin/python" scripts/reference/make_tflite_fuzz_seeds.py fuzz/corpus/tflite
  # The int8 one again with MediaPipe / TFLite Support tokenizer metadata and a packed vocab, so
  # mutations reach the metadata reader and the zip archive (the mediapipe venv, ~1.5 min when missing).
  local mp_venv
  mp_venv="$(bash scripts/reference/setup-mediapipe-venv.sh | tail -n 1)"
  "$mp_venv/bin/python" scripts/reference/make_mediapipe_minilm.py seed \
    fuzz/corpus/tflite/seed-tiny-bert-int8.tflite fuzz/corpus/tflite/seed-tiny-bert-int8-metadata.tflite
  # Any small .tflite files the TFLite tests keep (see scripts/reference/make_tflite_*.py).
  find tests/fixtures -name '*.tflite' -size -4M -exec cp {} fuzz/corpus/tflite/ \; 2>/dev/null || true
}

for target in "${targets[@]}"; do
  "seed_$target"
  echo "== fuzzing $target for ${seconds}s ($(ls "fuzz/corpus/$target" | wc -l) inputs to start from)"
  (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1)
done
