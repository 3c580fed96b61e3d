//! Attention on real model shapes, through the engine's `octet::layers::attention::attention` (the
//! fused kernel plus its rayon driver): MiniLM (12 heads of 32, 128 tokens, batch 1 and 32),
//! EmbeddingGemma (3 query heads sharing 1 KV head of 256, 512 tokens, with and without the
//! 256-token sliding window) and a T5-like shape (8 heads of 64 with a relative bias). Each
//! MiniLM and full-window Gemma case also runs with bf16 attention (`/bf16`: Q, K, V and P
//! rounded to bf16, `vdpbf16ps`) on a CPU with AVX-512 BF16 (the first line names the kernels;
//! without them, or with `OCTET_ATTENTION=f32`, the `/bf16` cases run f32).
//!
//! Run: `cargo bench -p octet-benches --bench attention` (criterion options after `--`).
//! Timings on a shared machine are a development guide only.

use criterion::Criterion;
use octet::layers::attention::{attention, attention_math, AttentionMath, AttentionShape, Span};
use std::time::Duration;

/// One benchmark case: a shape and a batch of equal-length sequences.
struct Case {
    label: &'static str,
    shape: AttentionShape,
    batch: usize,
    len: usize,
}

fn cases() -> Vec<Case> {
    let minilm = AttentionShape {
        heads: 12,
        kv_heads: 12,
        head_dim: 32,
        scale: 1.0 / 32f32.sqrt(),
        window: None,
        math: AttentionMath::F32,
    };
    let gemma = |window| AttentionShape {
        heads: 3,
        kv_heads: 1,
        head_dim: 256,
        scale: 1.0 / 256f32.sqrt(),
        window,
        math: AttentionMath::F32,
    };
    let bf16 = |shape: AttentionShape| AttentionShape {
        math: attention_math(true, AttentionMath::Bf16),
        ..shape
    };
    vec![
        Case {
            label: "minilm/b1x128/h12x32/bf16",
            shape: bf16(minilm),
            batch: 1,
            len: 128,
        },
        Case {
            label: "minilm/b32x128/h12x32/bf16",
            shape: bf16(minilm),
            batch: 32,
            len: 128,
        },
        Case {
            label: "gemma/b1x512/h3kv1x256/full/bf16",
            shape: bf16(gemma(None)),
            batch: 1,
            len: 512,
        },
        Case {
            label: "minilm/b1x128/h12x32",
            shape: minilm,
            batch: 1,
            len: 128,
        },
        Case {
            label: "minilm/b32x128/h12x32",
            shape: minilm,
            batch: 32,
            len: 128,
        },
        Case {
            label: "gemma/b1x512/h3kv1x256/full",
            shape: gemma(None),
            batch: 1,
            len: 512,
        },
        Case {
            label: "gemma/b1x512/h3kv1x256/window256",
            shape: gemma(Some(256)),
            batch: 1,
            len: 512,
        },
    ]
}

/// Deterministic values in [-1, 1).
fn pseudo_random(len: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn main() {
    println!("kernels: {}", octet_kernels::describe());
    let mut criterion = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for case in cases() {
        let spans: Vec<Span> = (0..case.batch)
            .map(|s| Span {
                start: s * case.len,
                len: case.len,
            })
            .collect();
        let rows = case.batch * case.len;
        let qkv = pseudo_random(rows * case.shape.qkv_width());
        let mut out = vec![0f32; rows * case.shape.out_width()];
        criterion.bench_function(case.label, |b| {
            b.iter(|| attention(&qkv, &spans, &case.shape, None, &mut out).expect("valid shapes"))
        });
    }
    criterion.final_summary();
}
