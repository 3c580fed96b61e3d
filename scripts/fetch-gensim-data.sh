#!/usr/bin/env bash
# Fetches the evaluation data with human judgements that ships in the gensim==4.4.0 wheel
# (gensim/test/test_data/, LGPL-2.1) without installing gensim:
#   lee.cor               50 news documents, one per line (Lee, Pincombe & Welsh 2005)
#   similarities0-1.txt   50x50 mean human similarity of those documents
#   wordsim353.tsv        353 word pairs with mean human relatedness (0..10)
#   simlex999.txt         999 word pairs with mean human similarity (0..10)
#   lee_background.cor    300 further documents of the same corpus (extra real prose)
#
# Output: ${OCTET_CACHE:-$HOME/.cache/octet}/data/gensim/ ; the folder path is the last stdout line.
# Idempotent: when every file is present with the pinned sha256 nothing is downloaded.
# The wheel is pinned to one platform (cp311 manylinux x86_64) so the same file is fetched on any
# host (aarch64 CI too); it is only unzipped, never installed. Needs only python3 (with pip).
set -euo pipefail
source "$(dirname "$0")/lib/verify.sh"

python="${PYTHON:-python3}"
cache="${OCTET_CACHE:-$HOME/.cache/octet}"
dest="$cache/data/gensim"

# name sha256 pairs of the files to extract from gensim/test/test_data/.
FILES="
lee.cor a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e
similarities0-1.txt 23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79
wordsim353.tsv f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d
simlex999.txt d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d
lee_background.cor 5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb
"

# verify DIR: exit 0 when every file is in DIR with its pinned digest.
verify() {
  verify_folder "$1" "" "$FILES"
}

if [ -d "$dest" ] && verify "$dest" 2>/dev/null; then
  echo "gensim test data already in cache" >&2
  echo "$dest"
  exit 0
fi

mkdir -p "$cache/data"
work="$(mktemp -d "$cache/data/.fetch-gensim.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "downloading gensim==4.4.0 wheel (cp311 manylinux x86_64, ~28 MB)" >&2
"$python" -m pip download --no-deps --no-input --disable-pip-version-check --progress-bar off \
  --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
  -d "$work/wheel" "gensim==4.4.0" </dev/null >&2

wheel="$(ls "$work"/wheel/gensim-4.4.0-*.whl)"
FILES="$FILES" "$python" - "$wheel" "$work/data" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1:3]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for line in os.environ["FILES"].split("\n"):
        if not line.strip():
            continue
        name = line.split()[0]
        with open(os.path.join(out, name), "wb") as f:
            f.write(z.read("gensim/test/test_data/" + name))
PY

verify "$work/data"
rm -rf "$dest"
mv "$work/data" "$dest"
echo "gensim test data verified" >&2
echo "$dest"
