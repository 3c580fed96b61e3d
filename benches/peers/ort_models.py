"""The ONNX Runtime models of the peer runner: exports and int8 variants, built once and cached.

MiniLM (`minilm_models`): several candidate graphs, because the fastest ORT int8 is the peer to beat.

- `ort-f32`: `torch.onnx.export` (TorchScript exporter, opset 17, dynamic batch and sequence axes) of the
  transformers `BertModel` as sentence-transformers loads it (transformers 5 picks SDPA attention);
- `ort-f32-opt`: the same with eager attention, then `onnxruntime.transformers.optimizer.optimize_model`
  (`model_type="bert"`, 12 heads, hidden 384): fused `Attention`, `EmbedLayerNormalization`,
  `SkipLayerNormalization`, `BiasGelu` (the SDPA export does not match the optimizer's attention pattern);
- int8, all `quantize_dynamic(per_channel=True, weight_type=QInt8)`: `ort-int8-qint8` of the SDPA export
  (the runner's model before issue 13), `ort-int8-eager` of the eager export, `ort-int8-opt` of the
  optimized graph (`QAttention`, `QEmbedLayerNormalization`; what optimum does), `ort-int8-opt-rr` the same
  with `reduce_range=True` (7-bit weights), and on request `ort-int8-quint8` (QUInt8 weights, SDPA export).
  `MatMulConstBOnly=True` is already quantize_dynamic's default in ORT 1.31 (identical files), so it is not a
  separate variant.

EmbeddingGemma (`gemma_models`): the whole sentence-transformers pipeline in one graph (Gemma3 encoder with
eager attention, mean pooling, Dense 768->3072, Dense 3072->768, L2 normalize), output `sentence_embedding`,
then `quantize_dynamic` per-channel QInt8 (the Dense layers too). The exporter cannot trace transformers' mask
builder, so the wrapper builds the two additive masks itself from `attention_mask` (padding keys masked; the
sliding layers also mask keys 512 or more positions away, transformers' bidirectional window) and passes them
in as the model's mask mapping. Only the int8 file is kept (the fp32 export, 1.2 GB, is deleted).

Each function returns {engine name: (path, output kind)}, where the output kind says what the graph returns:
"hidden" (last_hidden_state: the runner pools and normalizes in numpy) or "sentence" (finished vectors).
"""

import os
import subprocess
import sys
from pathlib import Path


def log(*args):
    print(*args, file=sys.stderr, flush=True)


MINILM_INT8 = ("ort-int8-qint8", "ort-int8-eager", "ort-int8-opt", "ort-int8-opt-rr")


def _export_bert(source, path, attn):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    bert = AutoModel.from_pretrained(str(source), attn_implementation=attn).eval()
    enc = tokenizer(["a short example", "and a second, longer example text"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]}

    class Wrapper(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(Wrapper(bert), tuple(enc[n] for n in names), str(tmp), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
    os.replace(tmp, path)


def _quantize(src, dst, weight_type="QInt8", reduce_range=False):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log(f"quantize_dynamic {src.name} -> {dst.name}")
    tmp = dst.with_suffix(".tmp.onnx")  # an interrupted run never leaves a file that looks cached
    # DefaultTensorType: the fused com.microsoft ops of an optimized graph defeat shape inference.
    quantize_dynamic(str(src), str(tmp), per_channel=True, reduce_range=reduce_range,
                     weight_type=getattr(QuantType, weight_type),
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    os.replace(tmp, dst)


def minilm_models(source, work, quint8=False):
    """{name: (path, "hidden")} for MiniLM; builds what is missing."""
    raw = work / "minilm-f32.onnx"  # SDPA export: ort-f32 runs it as is
    eager = work / "minilm-f32-eager.onnx"
    opt = work / "minilm-f32-opt.onnx"
    out = {"ort-f32": raw, "ort-f32-opt": opt, "ort-int8-qint8": work / "minilm-ort-int8-qint8.onnx",
           "ort-int8-eager": work / "minilm-ort-int8-eager.onnx", "ort-int8-opt": work / "minilm-ort-int8-opt.onnx",
           "ort-int8-opt-rr": work / "minilm-ort-int8-opt-rr.onnx"}
    if quint8:
        out["ort-int8-quint8"] = work / "minilm-ort-int8-quint8.onnx"
    if not raw.exists():
        _export_bert(source, raw, "sdpa")
    need_eager = not out["ort-int8-eager"].exists() or not opt.exists()
    if need_eager and not eager.exists():
        _export_bert(source, eager, "eager")
    if not opt.exists():
        from onnxruntime.transformers.optimizer import optimize_model
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(str(source))
        model = optimize_model(str(eager), model_type="bert", num_heads=cfg.num_attention_heads,
                               hidden_size=cfg.hidden_size)
        log(f"ORT transformer optimizer on MiniLM: {model.get_fused_operator_statistics()}")
        model.save_model_to_file(str(opt))
    for name, src, kw in (("ort-int8-qint8", raw, {}), ("ort-int8-eager", eager, {}), ("ort-int8-opt", opt, {}),
                          ("ort-int8-opt-rr", opt, {"reduce_range": True}),
                          ("ort-int8-quint8", raw, {"weight_type": "QUInt8"})):
        if name in out and not out[name].exists():
            _quantize(src, out[name], **kw)
    eager.unlink(missing_ok=True)  # only an intermediate
    return {k: (v, "hidden") for k, v in out.items()}


def _export_gemma(source, path):
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(source), device="cpu", model_kwargs={"attn_implementation": "eager"})
    gemma = st[0].auto_model.eval()
    window = gemma.config.sliding_window
    head = [m for m in list(st)[1:] if type(m).__name__ == "Dense"]
    if len(head) != 2:
        raise RuntimeError(f"expected 2 Dense modules after pooling, found {len(head)}")
    neg = torch.finfo(torch.float32).min

    class Pipeline(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gemma, self.dense = gemma, torch.nn.ModuleList(head)

        def forward(self, input_ids, attention_mask):
            keep = attention_mask.bool()[:, None, None, :]  # [batch, 1, 1, keys]
            full = torch.where(keep, 0.0, neg)
            pos = torch.arange(input_ids.shape[1])
            near = ((pos[:, None] - pos[None, :]).abs() < window)[None, None]
            sliding = torch.where(keep & near, 0.0, neg)
            hidden = self.gemma(input_ids=input_ids,
                                attention_mask={"full_attention": full, "sliding_attention": sliding}).last_hidden_state
            m = attention_mask[..., None].to(hidden.dtype)
            features = {"sentence_embedding": (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)}
            for d in self.dense:
                features = d(features)
            return torch.nn.functional.normalize(features["sentence_embedding"], dim=-1)

    pipeline = Pipeline().eval()
    texts = ["title: none | text: a short example", "and a second, longer example text to pad the first"]
    enc = st.tokenizer(texts, padding=True, return_tensors="pt")
    args = (enc["input_ids"], enc["attention_mask"])
    with torch.no_grad():
        ours = pipeline(*args)
        theirs = torch.from_numpy(st.encode(texts, normalize_embeddings=True, convert_to_numpy=True))
        cos = float((ours * theirs).sum(-1).min())
        if cos < 0.9999:
            raise RuntimeError(f"the export wrapper disagrees with sentence-transformers (min cosine {cos:.6f})")
        names = ["input_ids", "attention_mask"]
        torch.onnx.export(pipeline, args, str(path), input_names=names, output_names=["sentence_embedding"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"},
                                        "sentence_embedding": {0: "batch"}},
                          opset_version=17, dynamo=False)


def gemma_models(source, work):
    """{"ort-int8": (path, "sentence")} for EmbeddingGemma; exports in a child process (frees torch's memory)."""
    int8 = work / "gemma-ort-int8.onnx"
    if not int8.exists():
        f32 = work / "gemma-f32.onnx"
        try:
            log("exporting EmbeddingGemma to ONNX (once; 1.2 GB fp32, deleted after quantization)")
            subprocess.run([sys.executable, __file__, "gemma-export", str(source), str(f32)], check=True)
            _quantize(f32, int8)
        finally:
            f32.unlink(missing_ok=True)
            for extra in work.glob("gemma-f32.onnx*"):
                extra.unlink()
    return {"ort-int8": (int8, "sentence")}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "gemma-export":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        _export_gemma(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit("usage: ort_models.py gemma-export SOURCE OUT.onnx")
