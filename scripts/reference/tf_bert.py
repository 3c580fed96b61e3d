"""The TensorFlow BERT that make_tflite_minilm.py (one unpadded text) and
make_tflite_masked_minilm.py (masked, fixed length) export: the weights as named constants, the
LayerNorm, the encoder layers and the converter call they share. TF venv
(scripts/reference/setup-tf-venv.sh); TensorFlow is imported when a function needs it.

The sizes are arguments, read by each script when it builds its module, so the scripts can shrink
them (make_tflite_fuzz_seeds.py, the tiny masked files). The constant names are the files'
tensor names: the generated files are sha256-pinned (scripts/fetch-*.sh), so the graph this
builds must not change.
"""

import os
import sys

import numpy as np


def load_weights(source):
    """The sentence-transformers folder's model.safetensors, names without the `bert.` prefix."""
    from safetensors.numpy import load_file

    w = load_file(os.path.join(source, "model.safetensors"))
    return {k.removeprefix("bert."): v.astype(np.float32) for k, v in w.items()}


def attach_weights(module, w, layers):
    """Sets the BERT weights of `w` on the tf.Module `module` as named constants: word, position,
    token_type, norm, and per layer q, k, v, o, ln1, up, down, ln2."""
    import tensorflow as tf

    def const(name):
        return tf.constant(w[name], name=name.replace(".", "/"))

    def dense(name):
        # Keras layout: kernel [in, out] = the PyTorch weight transposed.
        return tf.constant(w[name + ".weight"].T.copy(), name=name.replace(".", "/") + "/kernel"), const(name + ".bias")

    module.word = const("embeddings.word_embeddings.weight")
    module.position = const("embeddings.position_embeddings.weight")
    module.token_type = const("embeddings.token_type_embeddings.weight")
    module.norm = (const("embeddings.LayerNorm.weight"), const("embeddings.LayerNorm.bias"))
    module.layers = []
    for i in range(layers):
        p = f"encoder.layer.{i}"
        module.layers.append(
            {
                "q": dense(f"{p}.attention.self.query"),
                "k": dense(f"{p}.attention.self.key"),
                "v": dense(f"{p}.attention.self.value"),
                "o": dense(f"{p}.attention.output.dense"),
                "ln1": (const(f"{p}.attention.output.LayerNorm.weight"), const(f"{p}.attention.output.LayerNorm.bias")),
                "up": dense(f"{p}.intermediate.dense"),
                "down": dense(f"{p}.output.dense"),
                "ln2": (const(f"{p}.output.LayerNorm.weight"), const(f"{p}.output.LayerNorm.bias")),
            }
        )


def layer_norm(x, gb, eps):
    import tensorflow as tf

    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    var = tf.reduce_mean(tf.math.squared_difference(x, mean), axis=-1, keepdims=True)
    return (x - mean) * tf.math.rsqrt(var + eps) * gb[0] + gb[1]


def linear(x, wb):
    import tensorflow as tf

    return tf.matmul(x, wb[0]) + wb[1]


def encoder_layers(module, x, hidden, heads, eps, bias=None):
    """The post-LN layers over the [n, hidden] rows `x`: attention over `heads` heads (scores
    plus `bias`, if given, before the softmax), residual, LayerNorm, GELU (erf) FFN, residual,
    LayerNorm."""
    import tensorflow as tf

    head_dim = hidden // heads
    for L in module.layers:
        def split(t):
            return tf.transpose(tf.reshape(t, [-1, heads, head_dim]), [1, 0, 2])

        q, k, v = split(linear(x, L["q"])), split(linear(x, L["k"])), split(linear(x, L["v"]))
        scores = tf.matmul(q, k, transpose_b=True) / tf.math.sqrt(float(head_dim))
        if bias is not None:
            scores = scores + bias
        context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
        context = tf.reshape(tf.transpose(context, [1, 0, 2]), [-1, hidden])
        x = layer_norm(x + linear(context, L["o"]), L["ln1"], eps)
        inner = tf.nn.gelu(linear(x, L["up"]), approximate=False)
        x = layer_norm(x + linear(inner, L["down"]), L["ln2"], eps)
    return x


def convert(module, kind, concrete=None):
    """The module's `embed` (or its traced `concrete` function) converted by TensorFlow's
    converter: `f32`, or `int8` (dynamic range: Optimize.DEFAULT, no dataset)."""
    import tensorflow as tf

    concrete = concrete or module.embed.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    if kind == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def write_files(module, files, out_dir, sha256_file):
    """Converts `module` once per {kind: file name} of `files` into `out_dir` (each written to a
    temporary name, then renamed)."""
    os.makedirs(out_dir, exist_ok=True)
    concrete = module.embed.get_concrete_function()
    for kind, name in files.items():
        data = convert(module, kind, concrete)
        path = os.path.join(out_dir, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        print(f"wrote {path} ({len(data)} bytes, sha256 {sha256_file(path)})", file=sys.stderr)
