"""Writes the int8 TFLite T5 encoder (scripts/fetch-tflite-t5.sh) with TFLite Support metadata
naming a SentencePiece tokenizer, and the SentencePiece model of tests/fixtures/sentencepiece
(unigram.model) packed in, written by MediaPipe's metadata classes: the T5 / ALBERT form of
MediaPipe's text metadata (SentencePieceTokenizerMd as the subgraph's input process unit).
The zip entry's time is pinned to 1980-01-01 so the bytes do not depend on the day.

Run (venv: scripts/reference/setup-mediapipe-venv.sh):
  .venv-mediapipe/bin/python scripts/reference/make_t5_sentencepiece_metadata.py IN.tflite OUT.tflite
"""

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

from env import REPO  # noqa: E402

SP_MODEL = os.path.join(REPO, "tests", "fixtures", "sentencepiece", "unigram.model")
ZIP_EPOCH = 315532800


def main():
    src, dest = sys.argv[1:3]
    model_md = metadata_info.GeneralMd(name="T5 encoder (int8, seeded)", description="For tests.").create_metadata()
    ids_md = metadata_info.TensorMd(name="input_ids", description="SentencePiece ids, </s>, 0 = padding.").create_metadata()
    out_md = metadata_info.TensorMd(name="embedding", description="The sentence embedding.").create_metadata()
    graph = schema.SubGraphMetadataT()
    graph.inputTensorMetadata = [ids_md]
    graph.outputTensorMetadata = [out_md]
    graph.inputProcessUnits = [metadata_info.SentencePieceTokenizerMd(os.path.basename(SP_MODEL)).create_metadata()]
    model_md.subgraphMetadata = [graph]
    b = flatbuffers.Builder(0)
    b.Finish(model_md.Pack(b), metadata.MetadataPopulator.METADATA_FILE_IDENTIFIER)
    with open(src, "rb") as f:
        populator = metadata.MetadataPopulator.with_model_buffer(f.read())
    populator.load_metadata_buffer(b.Output())
    populator.load_associated_files([SP_MODEL])
    with mock.patch("time.time", return_value=float(ZIP_EPOCH)):
        populator.populate()
    with open(dest + ".partial", "wb") as f:
        f.write(populator.get_model_buffer())
    os.replace(dest + ".partial", dest)
    print(f"wrote {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
