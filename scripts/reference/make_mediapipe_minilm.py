"""Writes a MediaPipe-style text-embedder file: the int8 TFLite MiniLM
(scripts/fetch-tflite-minilm.sh) with TFLite Support metadata naming a BERT tokenizer and the
model's vocab.txt packed inside, written by MediaPipe's own metadata writer classes.

  build      <out_dir>/minilm-int8-metadata.tflite
  embedder   tries MediaPipe's TextEmbedder on that file and prints what happens
  seed       IN.tflite OUT.tflite: the same metadata on a small model with a 64-token vocab, a
             seed for the `tflite` fuzz target (scripts/fuzz.sh) that reaches the metadata path

The metadata is what MediaPipe's text writers produce for a BERT model (GeneralMd, a TensorMd per
input and output, a BertTokenizerMd subgraph input process unit whose vocab file is an
associated file), populated by MediaPipe's MetadataPopulator: the TFLITE_METADATA buffer
(ModelMetadata flatbuffer, identifier M001) goes into the model, and vocab.txt into a zip
archive appended after it.

MediaPipe's `MetadataWriter.add_bert_text_input` is not used because it insists on the three
inputs of MediaPipe's BERT models (ids, mask, segment_ids of one fixed length); this MiniLM takes
one input, `input_ids` [1, n] with n dynamic. For the same reason MediaPipe's TextEmbedder cannot
run the file (its BERT preprocessor wants those three inputs): `embedder` shows its error.

The zip entry's timestamp is MediaPipe's "now"; it is pinned to 1980-01-01 00:00 UTC here so the
file's bytes (and sha256, checked by scripts/fetch-mediapipe-minilm.sh) do not depend on the day.

Run (venv: scripts/reference/setup-mediapipe-venv.sh):
  .venv-mediapipe/bin/python scripts/reference/make_mediapipe_minilm.py build [--out DIR]
  .venv-mediapipe/bin/python scripts/reference/make_mediapipe_minilm.py embedder [--out DIR]
DIR defaults to ${OCTET_CACHE:-~/.cache/octet}/sources/all-MiniLM-L6-v2-mediapipe. The input is
sources/all-MiniLM-L6-v2-tflite/minilm-int8.tflite and the vocab sources/all-MiniLM-L6-v2/vocab.txt
under the same cache.
"""

import argparse
import os
import sys
import time
from unittest import mock

os.environ["TZ"] = "UTC"
time.tzset()

import flatbuffers  # noqa: E402
from mediapipe.tasks.metadata import metadata_schema_py_generated as schema  # noqa: E402
from mediapipe.tasks.python.metadata import metadata  # noqa: E402
from mediapipe.tasks.python.metadata.metadata_writers import metadata_info  # noqa: E402

from env import CACHE  # noqa: E402

DEFAULT_OUT = os.path.join(CACHE, "sources", "all-MiniLM-L6-v2-mediapipe")
SOURCE = os.path.join(CACHE, "sources", "all-MiniLM-L6-v2-tflite", "minilm-int8.tflite")
VOCAB = os.path.join(CACHE, "sources", "all-MiniLM-L6-v2", "vocab.txt")
OUT_NAME = "minilm-int8-metadata.tflite"
# 1980-01-01 00:00:00 UTC, the earliest time a zip entry can record.
ZIP_EPOCH = 315532800


def metadata_buffer(vocab_name):
    """The ModelMetadata flatbuffer: one input (token ids), one output (the embedding), and a
    BERT tokenizer as the subgraph's input process unit."""
    model_md = metadata_info.GeneralMd(
        name="all-MiniLM-L6-v2 (int8)",
        description="Sentence embedding model: mean-pooled, L2-normalised 384-d vectors.",
    ).create_metadata()
    ids_md = metadata_info.TensorMd(
        name="input_ids", description="Token ids from the BERT tokenizer: [CLS] text [SEP], no padding."
    ).create_metadata()
    out_md = metadata_info.TensorMd(name="embedding", description="The sentence embedding.").create_metadata()
    graph = schema.SubGraphMetadataT()
    graph.inputTensorMetadata = [ids_md]
    graph.outputTensorMetadata = [out_md]
    graph.inputProcessUnits = [metadata_info.BertTokenizerMd(vocab_name).create_metadata()]
    model_md.subgraphMetadata = [graph]
    b = flatbuffers.Builder(0)
    b.Finish(model_md.Pack(b), metadata.MetadataPopulator.METADATA_FILE_IDENTIFIER)
    return b.Output()


def with_metadata(src, vocab, dest):
    """Writes `src` with the BERT-tokenizer metadata and `vocab` packed in, to `dest`."""
    with open(src, "rb") as f:
        model = f.read()
    populator = metadata.MetadataPopulator.with_model_buffer(model)
    # The associated file is named by its base name, as MediaPipe's writers do.
    populator.load_metadata_buffer(metadata_buffer(os.path.basename(vocab)))
    populator.load_associated_files([vocab])
    with mock.patch("time.time", return_value=float(ZIP_EPOCH)):
        populator.populate()
    out = populator.get_model_buffer()
    tmp = dest + ".partial"
    with open(tmp, "wb") as f:
        f.write(out)
    os.replace(tmp, dest)
    print("packed files:", populator.get_packed_associated_file_list(), file=sys.stderr)
    print(f"wrote {dest} ({len(out)} bytes)", file=sys.stderr)


def build(out_dir):
    if not os.path.isfile(SOURCE) or not os.path.isfile(VOCAB):
        sys.exit(f"need {SOURCE} and {VOCAB}: run scripts/fetch-tflite-minilm.sh first")
    os.makedirs(out_dir, exist_ok=True)
    with_metadata(SOURCE, VOCAB, os.path.join(out_dir, OUT_NAME))


def seed(src, dest):
    import tempfile

    words = [f"w{i}" for i in range(59)]
    with tempfile.TemporaryDirectory() as tmp:
        vocab = os.path.join(tmp, "vocab.txt")
        with open(vocab, "w") as f:
            f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
        with_metadata(src, vocab, dest)


def embedder(out_dir):
    from mediapipe.tasks.python.core import base_options
    from mediapipe.tasks.python.text import text_embedder

    path = os.path.join(out_dir, OUT_NAME)
    options = text_embedder.TextEmbedderOptions(base_options=base_options.BaseOptions(model_asset_path=path))
    try:
        with text_embedder.TextEmbedder.create_from_options(options) as e:
            r = e.embed("The cat sat on the mat.")
            print("embedding:", r.embeddings[0].embedding[:8])
    except Exception as err:  # noqa: BLE001 - the point is to show MediaPipe's message
        print(f"MediaPipe TextEmbedder cannot run {path}: {type(err).__name__}: {err}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["build", "embedder", "seed"])
    ap.add_argument("files", nargs="*", help="seed: IN.tflite OUT.tflite")
    ap.add_argument("--out", default=DEFAULT_OUT, help="folder of the output file")
    args = ap.parse_args()
    if args.what == "seed":
        if len(args.files) != 2:
            ap.error("seed takes IN.tflite OUT.tflite")
        seed(*args.files)
    else:
        {"build": build, "embedder": embedder}[args.what](args.out)


if __name__ == "__main__":
    main()
