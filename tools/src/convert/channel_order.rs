//! Reordering an encoder's hidden channels so that int8 activation groups hold channels of
//! similar size.
//!
//! A BERT encoder's norm outputs carry a few channels far larger than the rest (MiniLM: max
//! |x| 30 in one channel, under 2 in most). The QKV and FFN-up projections quantize their
//! inputs in groups of 128 channels with one scale per group, so each large channel coarsens
//! the 127 others of its group. The hidden channels of the residual stream can be stored in
//! any order, as long as every per-channel tensor follows it: this module sorts them by the
//! root mean square of the projections' inputs during calibration (largest first), so the
//! large ones share the first group. The engine puts the pooled vector back in the source
//! order (`octet::pooling::ChannelOrder`, tensor `encoder.channel_order`); nothing else
//! changes at run time. On all-MiniLM-L6-v2 (400 Lee sentences vs fp32 sentence-transformers,
//! with centered groups on QKV, FFN-up and FFN-down), mean / p1 / min cosine 0.999435 /
//! 0.999021 / 0.998802 -> 0.999535 / 0.999198 / 0.998950.
//!
//! EmbeddingGemma (QKV in symmetric groups of 128, gate/up one scale per token) gained nothing
//! clear from it (corpus with the document prompt 0.999417 / 0.999132 / 0.998946 -> 0.999450 /
//! 0.999038 / 0.998648), so only BERT is reordered.
//!
//! The architecture names each tensor's [`Role`] ([`super::bert::channel_role`]); the
//! calibration statistics ([`Gram`]) of the layers that read the hidden channels are reordered
//! too, so GPTQ rounds the stored weights.

use super::calibrate::Gram;
use super::{Logical, Planned};
use anyhow::{bail, Result};
use std::collections::HashMap;

/// How a tensor meets the hidden channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A table or matrix [rows, hidden]: its columns are channels (embedding tables).
    Columns,
    /// A vector [hidden] (norm weights and biases).
    Vector,
    /// A linear layer reading the hidden channels: its weight's columns are channels.
    LinearInput,
    /// A linear layer writing them: its weight's rows and its bias are channels.
    LinearOutput,
}

/// The order that sorts the hidden channels by the root mean square of the inputs of the
/// linear layers named in `inputs` (their [`Gram`] diagonals, summed), largest first; ties
/// keep the source order. `None` when no such layer was calibrated or the order would not
/// change.
pub fn by_input_size(grams: &HashMap<String, Gram>, inputs: &[String], hidden: usize) -> Option<Vec<usize>> {
    let mut mean_square = vec![0f64; hidden];
    let mut seen = false;
    for name in inputs {
        let Some(gram) = grams.get(name).filter(|g| g.k == hidden && g.rows > 0) else {
            continue;
        };
        for (c, ms) in mean_square.iter_mut().enumerate() {
            *ms += gram.h[c * hidden + c] / gram.rows as f64;
        }
        seen = true;
    }
    if !seen || mean_square.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut order: Vec<usize> = (0..hidden).collect();
    order.sort_by(|&a, &b| mean_square[b].total_cmp(&mean_square[a]));
    (order.iter().enumerate().any(|(j, &c)| j != c)).then_some(order)
}

/// Stores every tensor `role` names in `order` (stored channel j = source channel
/// `order[j]`), and the statistics of the layers reading the channels to match.
pub fn apply(
    planned: &mut [Planned],
    grams: &mut HashMap<String, Gram>,
    order: &[usize],
    role: impl Fn(&str) -> Option<Role>,
) -> Result<()> {
    let hidden = order.len();
    for p in planned.iter_mut() {
        let Some(role) = role(&p.name) else { continue };
        match (role, &mut p.tensor) {
            // Row-major [rows, hidden] values, whatever the stored blocks (Gemma's table).
            (Role::Columns, Logical::Table { data, .. }) if data.len() % hidden == 0 => permute_columns(data, order),
            (Role::Columns, Logical::Vector { data, shape }) if shape.last() == Some(&hidden) => {
                permute_columns(data, order)
            }
            (Role::Vector, Logical::Vector { data, .. }) if data.len() == hidden => *data = gather(data, order),
            (Role::LinearInput, Logical::Linear { weight, k, .. }) if *k == hidden => {
                permute_columns(weight, order);
                if let Some(gram) = grams.get_mut(&format!("{}.weight", p.name)) {
                    permute_gram(gram, order);
                }
            }
            (Role::LinearOutput, Logical::Linear { weight, n, k, bias, .. }) if *n == hidden => {
                *weight = order
                    .iter()
                    .flat_map(|&c| weight[c * *k..(c + 1) * *k].iter().copied())
                    .collect();
                if let Some(bias) = bias {
                    *bias = gather(bias, order);
                }
            }
            _ => bail!(
                "cannot reorder the hidden channels of {} as {role:?}: unexpected shape",
                p.name
            ),
        }
    }
    Ok(())
}

/// `order` as the i32 tensor the engine reads.
pub fn tensor(order: &[usize]) -> Result<Vec<i32>> {
    order
        .iter()
        .map(|&c| i32::try_from(c).map_err(|_| anyhow::anyhow!("channel {c} does not fit an i32")))
        .collect()
}

/// `values[order[j]]` for each j.
fn gather(values: &[f32], order: &[usize]) -> Vec<f32> {
    order.iter().map(|&c| values[c]).collect()
}

/// Reorders the columns of a row-major matrix `order.len()` wide.
fn permute_columns(data: &mut [f32], order: &[usize]) {
    for row in data.chunks_exact_mut(order.len()) {
        let reordered = gather(row, order);
        row.copy_from_slice(&reordered);
    }
}

/// `H[order][:, order]`: the statistics of the reordered inputs.
fn permute_gram(gram: &mut Gram, order: &[usize]) {
    let k = gram.k;
    let h = &gram.h;
    gram.h = order
        .iter()
        .flat_map(|&a| order.iter().map(move |&b| h[a * k + b]))
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gram(k: usize, diag: &[f64], rows: usize) -> Gram {
        let mut h = vec![0.0; k * k];
        for (c, &d) in diag.iter().enumerate() {
            h[c * k + c] = d;
        }
        h[1] = 0.5; // H[0][1]
        Gram { k, h, rows }
    }

    #[test]
    fn order_sorts_by_summed_mean_squares_largest_first() {
        let mut grams = HashMap::new();
        grams.insert("a.weight".to_string(), gram(4, &[1.0, 9.0, 4.0, 4.0], 1));
        grams.insert("b.weight".to_string(), gram(4, &[2.0, 2.0, 0.0, 0.0], 2));
        let inputs = ["a.weight".to_string(), "b.weight".to_string()];
        // Mean squares 2, 10, 4, 4: ties keep the source order.
        assert_eq!(by_input_size(&grams, &inputs, 4), Some(vec![1, 2, 3, 0]));
        // Nothing calibrated, a different width, or already in order: no reordering.
        assert_eq!(by_input_size(&grams, &["c.weight".to_string()], 4), None);
        assert_eq!(by_input_size(&grams, &inputs, 3), None);
        grams.insert("d.weight".to_string(), gram(3, &[3.0, 2.0, 1.0], 1));
        assert_eq!(by_input_size(&grams, &["d.weight".to_string()], 3), None);
    }

    /// A reordered input layer after a reordered output layer computes the same product, and
    /// the statistics follow the weights.
    #[test]
    fn reordered_layers_compute_the_same_thing() {
        let order = vec![2, 0, 3, 1];
        let x = [0.5f32, -1.0, 2.0, 3.0];
        // out = W_out x + b (4 -> 4), then y = W_in out (4 -> 2).
        let w_out: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
        let b_out: Vec<f32> = vec![0.1, -0.2, 0.3, -0.4];
        let w_in: Vec<f32> = (0..8).map(|i| (i as f32 * 0.71).cos()).collect();
        let linear = |w: &[f32], b: Option<&[f32]>, x: &[f32], n: usize| -> Vec<f32> {
            (0..n)
                .map(|r| {
                    let dot: f32 = w[r * x.len()..(r + 1) * x.len()]
                        .iter()
                        .zip(x)
                        .map(|(a, b)| a * b)
                        .sum();
                    dot + b.map_or(0.0, |b| b[r])
                })
                .collect()
        };
        let want = linear(&w_in, None, &linear(&w_out, Some(&b_out), &x, 4), 2);
        let mut planned = vec![
            Planned::new(
                "out",
                Logical::Linear {
                    weight: w_out.clone(),
                    n: 4,
                    k: 4,
                    bias: Some(b_out.clone()),
                    after_norm: false,
                },
            ),
            Planned::new(
                "in",
                Logical::Linear {
                    weight: w_in.clone(),
                    n: 2,
                    k: 4,
                    bias: None,
                    after_norm: true,
                },
            ),
            Planned::new(
                "norm",
                Logical::Vector {
                    data: vec![10.0, 11.0, 12.0, 13.0],
                    shape: vec![4],
                },
            ),
        ];
        let mut grams = HashMap::new();
        grams.insert("in.weight".to_string(), gram(4, &[1.0, 2.0, 3.0, 4.0], 1));
        let role = |name: &str| match name {
            "out" => Some(Role::LinearOutput),
            "in" => Some(Role::LinearInput),
            "norm" => Some(Role::Vector),
            _ => None,
        };
        apply(&mut planned, &mut grams, &order, role).unwrap();
        let get = |i: usize| match &planned[i].tensor {
            Logical::Linear { weight, bias, .. } => (weight.clone(), bias.clone()),
            _ => unreachable!(),
        };
        let ((w_out2, b_out2), (w_in2, _)) = (get(0), get(1));
        let got = linear(&w_in2, None, &linear(&w_out2, b_out2.as_deref(), &x, 4), 2);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        let Logical::Vector { data, .. } = &planned[2].tensor else {
            unreachable!()
        };
        assert_eq!(data, &[12.0, 10.0, 13.0, 11.0]);
        // H of the reordered inputs: diagonal 3, 1, 4, 2; H[0][1] = 0.5 moves to (1, 3).
        let h = &grams["in.weight"].h;
        assert_eq!([h[0], h[5], h[10], h[15]], [3.0, 1.0, 4.0, 2.0]);
        assert_eq!(h[4 + 3], 0.5);
        // A tensor whose shape does not fit its role is an error.
        let mut bad = vec![Planned::new(
            "norm",
            Logical::Vector {
                data: vec![1.0; 3],
                shape: vec![3],
            },
        )];
        assert!(apply(&mut bad, &mut grams, &order, role).is_err());
    }
}
