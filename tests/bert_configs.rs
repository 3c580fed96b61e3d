//! The BERT code path is not MiniLM-specific: a small BERT with other sizes, a `bert.` name
//! prefix, CLS pooling and a shorter window (the shape of bge / e5 / gte configs) is built here
//! with seeded random weights, converted with `octet convert`'s code, and compared against a
//! direct f64 implementation of the BERT forward pass written out in this file.

use octet::Embedder;
use octet_tests::*;
use safetensors::tensor::TensorView;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

const HIDDEN: usize = 48;
const HEADS: usize = 4;
const LAYERS: usize = 2;
const INTER: usize = 96;
const POSITIONS: usize = 64;
const WINDOW: usize = 32;
const EPS: f64 = 1e-12;

/// Seeded weights: a small linear congruential generator, values in [-scale, scale].
struct Weights {
    state: u64,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl Weights {
    fn add(&mut self, name: &str, shape: &[usize], scale: f32, offset: f32) -> Vec<f32> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                self.state = self
                    .state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                offset + scale * (((self.state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
            })
            .collect();
        self.tensors
            .push((format!("bert.{name}"), shape.to_vec(), values.clone()));
        values
    }
}

/// Writes the model folder and returns the weights by octet-independent name.
fn write_folder(dir: &Path, vocab: usize) -> HashMap<String, Vec<f32>> {
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    let mut w = Weights {
        state: 42,
        tensors: Vec::new(),
    };
    let mut named = HashMap::new();
    let mut add = |w: &mut Weights, name: &str, shape: &[usize], scale: f32, offset: f32| {
        named.insert(name.to_string(), w.add(name, shape, scale, offset));
    };
    add(&mut w, "embeddings.word_embeddings.weight", &[vocab, HIDDEN], 0.5, 0.0);
    add(
        &mut w,
        "embeddings.position_embeddings.weight",
        &[POSITIONS, HIDDEN],
        0.2,
        0.0,
    );
    add(
        &mut w,
        "embeddings.token_type_embeddings.weight",
        &[2, HIDDEN],
        0.2,
        0.0,
    );
    add(&mut w, "embeddings.LayerNorm.weight", &[HIDDEN], 0.2, 1.0);
    add(&mut w, "embeddings.LayerNorm.bias", &[HIDDEN], 0.1, 0.0);
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}");
        for part in ["query", "key", "value"] {
            add(
                &mut w,
                &format!("{p}.attention.self.{part}.weight"),
                &[HIDDEN, HIDDEN],
                0.25,
                0.0,
            );
            add(&mut w, &format!("{p}.attention.self.{part}.bias"), &[HIDDEN], 0.1, 0.0);
        }
        add(
            &mut w,
            &format!("{p}.attention.output.dense.weight"),
            &[HIDDEN, HIDDEN],
            0.2,
            0.0,
        );
        add(&mut w, &format!("{p}.attention.output.dense.bias"), &[HIDDEN], 0.1, 0.0);
        add(
            &mut w,
            &format!("{p}.attention.output.LayerNorm.weight"),
            &[HIDDEN],
            0.2,
            1.0,
        );
        add(
            &mut w,
            &format!("{p}.attention.output.LayerNorm.bias"),
            &[HIDDEN],
            0.1,
            0.0,
        );
        add(
            &mut w,
            &format!("{p}.intermediate.dense.weight"),
            &[INTER, HIDDEN],
            0.2,
            0.0,
        );
        add(&mut w, &format!("{p}.intermediate.dense.bias"), &[INTER], 0.1, 0.0);
        add(&mut w, &format!("{p}.output.dense.weight"), &[HIDDEN, INTER], 0.15, 0.0);
        add(&mut w, &format!("{p}.output.dense.bias"), &[HIDDEN], 0.1, 0.0);
        add(&mut w, &format!("{p}.output.LayerNorm.weight"), &[HIDDEN], 0.2, 1.0);
        add(&mut w, &format!("{p}.output.LayerNorm.bias"), &[HIDDEN], 0.1, 0.0);
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = w
        .tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let config = json!({
        "model_type": "bert", "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "intermediate_size": INTER, "vocab_size": vocab, "max_position_embeddings": POSITIONS,
        "type_vocab_size": 2, "layer_norm_eps": EPS, "hidden_act": "gelu"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(minilm_source().join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let modules = json!([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
    ]);
    std::fs::write(dir.join("modules.json"), modules.to_string()).unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        json!({"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": true}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("sentence_bert_config.json"),
        json!({"max_seq_length": WINDOW}).to_string(),
    )
    .unwrap();
    named
}

fn layer_norm(x: &mut [f64], w: &[f32], b: &[f32]) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    for (i, v) in x.iter_mut().enumerate() {
        *v = (*v - mean) / (var + EPS).sqrt() * w[i] as f64 + b[i] as f64;
    }
}

fn linear(x: &[f64], w: &[f32], b: &[f32], n: usize) -> Vec<f64> {
    let k = x.len();
    (0..n)
        .map(|o| b[o] as f64 + (0..k).map(|i| x[i] * w[o * k + i] as f64).sum::<f64>())
        .collect()
}

/// The BERT forward pass in f64, CLS pooling, L2 normalized.
fn reference(ids: &[u32], w: &HashMap<String, Vec<f32>>) -> Vec<f64> {
    let g = |name: &str| w.get(name).unwrap_or_else(|| panic!("{name}")).as_slice();
    let d = HIDDEN / HEADS;
    let mut x: Vec<Vec<f64>> = ids
        .iter()
        .enumerate()
        .map(|(t, &id)| {
            let mut row: Vec<f64> = (0..HIDDEN)
                .map(|c| {
                    (g("embeddings.word_embeddings.weight")[id as usize * HIDDEN + c]
                        + g("embeddings.position_embeddings.weight")[t * HIDDEN + c]
                        + g("embeddings.token_type_embeddings.weight")[c]) as f64
                })
                .collect();
            layer_norm(
                &mut row,
                g("embeddings.LayerNorm.weight"),
                g("embeddings.LayerNorm.bias"),
            );
            row
        })
        .collect();
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}");
        let proj = |part: &str, x: &[f64]| {
            linear(
                x,
                g(&format!("{p}.attention.self.{part}.weight")),
                g(&format!("{p}.attention.self.{part}.bias")),
                HIDDEN,
            )
        };
        let (q, k, v): (Vec<_>, Vec<_>, Vec<_>) = (
            x.iter().map(|r| proj("query", r)).collect(),
            x.iter().map(|r| proj("key", r)).collect(),
            x.iter().map(|r| proj("value", r)).collect(),
        );
        for (i, row) in x.iter_mut().enumerate() {
            let mut ctx = vec![0f64; HIDDEN];
            for h in 0..HEADS {
                let s: Vec<f64> = (0..ids.len())
                    .map(|j| (0..d).map(|e| q[i][h * d + e] * k[j][h * d + e]).sum::<f64>() / (d as f64).sqrt())
                    .collect();
                let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for c in 0..d {
                    ctx[h * d + c] = (0..ids.len()).map(|j| e[j] / sum * v[j][h * d + c]).sum();
                }
            }
            let out = linear(
                &ctx,
                g(&format!("{p}.attention.output.dense.weight")),
                g(&format!("{p}.attention.output.dense.bias")),
                HIDDEN,
            );
            row.iter_mut().zip(&out).for_each(|(a, b)| *a += b);
            layer_norm(
                row,
                g(&format!("{p}.attention.output.LayerNorm.weight")),
                g(&format!("{p}.attention.output.LayerNorm.bias")),
            );
            let mut inner = linear(
                row,
                g(&format!("{p}.intermediate.dense.weight")),
                g(&format!("{p}.intermediate.dense.bias")),
                INTER,
            );
            inner
                .iter_mut()
                .for_each(|v| *v = 0.5 * *v * (1.0 + libm::erf(*v / std::f64::consts::SQRT_2)));
            let out = linear(
                &inner,
                g(&format!("{p}.output.dense.weight")),
                g(&format!("{p}.output.dense.bias")),
                HIDDEN,
            );
            row.iter_mut().zip(&out).for_each(|(a, b)| *a += b);
            layer_norm(
                row,
                g(&format!("{p}.output.LayerNorm.weight")),
                g(&format!("{p}.output.LayerNorm.bias")),
            );
        }
    }
    let cls = &x[0];
    let norm = cls.iter().map(|v| v * v).sum::<f64>().sqrt();
    cls.iter().map(|v| v / norm).collect()
}

#[test]
fn small_bert_with_cls_pooling_matches_a_direct_implementation() {
    let dir = scratch_dir().join("small-bert");
    let vocab = 30522;
    let weights = write_folder(&dir, vocab);
    let texts = [
        "A small model with other sizes.",
        "CLS pooling, a 32-token window and a bert. prefix.",
        "x",
        &"long text ".repeat(40),
    ];
    let f32 = Embedder::open(convert(&dir, "small-bert", "f32")).unwrap();
    let int8 = Embedder::open(convert(&dir, "small-bert", "int8")).unwrap();
    assert_eq!(f32.dim(), HIDDEN);
    assert_eq!(f32.window(), WINDOW);
    // The calibrated int8 file stores the hidden channels largest first; its vectors still
    // match f32 below, so the order is applied everywhere and undone after pooling.
    assert!(int8.file().contains(octet::format::CHANNEL_ORDER_TENSOR));
    assert!(!f32.file().contains(octet::format::CHANNEL_ORDER_TENSOR));
    let got = f32.embed(&texts).unwrap();
    let got_int8 = int8.embed(&texts).unwrap();
    let tokenizer = octet::tokenize::TextTokenizer::from_file(f32.file(), WINDOW).unwrap();
    for (i, text) in texts.iter().enumerate() {
        let ids = tokenizer.encode(i, text, octet::Truncation::Truncate).unwrap().ids;
        assert!(ids.len() <= WINDOW);
        let want: Vec<f32> = reference(&ids, &weights).iter().map(|&v| v as f32).collect();
        let (c, diff) = (cosine(&got[i], &want), max_abs_diff(&got[i], &want));
        // f32 against f64: summation order and the f32 GELU/exp approximations, ~1e-6 per value.
        assert!(
            c >= 0.99999 && diff <= 1e-4,
            "text {i}: cosine {c}, max abs diff {diff}"
        );
        let c8 = cosine(&got_int8[i], &got[i]);
        assert!(c8 >= 0.99, "text {i}: int8 vs f32 cosine {c8}");
    }
}
