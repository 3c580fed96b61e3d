//! Recognises a T5 encoder in a TFLite graph, as TensorFlow's converter writes one from a
//! fixed-length, padded input (the browser's embedding model: ids [1, 64], 0 = padding), and
//! names its constants in the engine's terms (`crates/octet/src/model/t5.rs`).
//!
//! ```text
//! ids -> [RESHAPE] -> GATHER(table) [-> DEQUANTIZE] = x        ids -> NOT_EQUAL(pad) -> CAST = mask
//! per layer:  RMSNorm(x) -> 3 x FULLY_CONNECTED -> RESHAPE/TRANSPOSE -> BATCH_MATMUL(Q, K)
//!               -> ADD(bias) -> SOFTMAX -> BATCH_MATMUL(., V) -> TRANSPOSE/RESHAPE -> FULLY_CONNECTED
//!               -> ADD residual
//!             RMSNorm -> FULLY_CONNECTED [fused RELU | RELU | GELU] -> FULLY_CONNECTED -> ADD residual
//!             (gated: GELU(FULLY_CONNECTED) * FULLY_CONNECTED -> FULLY_CONNECTED)
//! RMSNorm -> MUL(mask) -> SUM / SUM(mask) (or MEAN) -> [FULLY_CONNECTED dense] [-> L2_NORMALIZATION]
//! ```
//!
//! RMSNorm is the lowering of `x * rsqrt(mean(x²) + eps) * w` (SQUARE or MUL(x, x), MEAN, ADD eps,
//! RSQRT, MUL): the converter folds `w` into the FULLY_CONNECTED layers that read it, so a layer's
//! norm may have no weight of its own ([`T5LayerRefs::attention_norm`] is then `None`).
//!
//! **The relative-position bias.** With a fixed input length every relative position is a
//! constant, so the converter folds T5's bucket arithmetic and the look-up in the
//! [buckets, heads] table into one [heads, n, n] constant, added (with the padding mask) to the
//! scores of every layer. [`bucket_table`] inverts the folding: it checks that the constant
//! depends only on `key - query` and finds a T5 bucketing (number of buckets, max distance)
//! under which equal buckets hold equal values, so the engine's table reproduces the constant
//! exactly for every sequence up to n tokens. Buckets no distance below n reaches are never
//! read and are stored as 0.

use crate::graph::{attention_roles, find_embedding, unrecognised, AttentionRoles, Graph, LinearRef};
use crate::model::{op, OpOptions, Operator, TfliteModel};
use crate::TfliteError;

/// TFLite's fused activation code for RELU.
mod buckets;
pub use buckets::{bucket_table, BucketTable, MAX_WINDOW};

const FUSED_RELU: i8 = 1;

/// The activation of the feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnActivation {
    Relu,
    /// GELU with the tanh approximation (`gelu_new`).
    GeluTanh,
    /// GELU with erf.
    GeluErf,
}

/// One encoder layer's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct T5LayerRefs {
    /// The RMSNorm weight before attention; `None` when folded into Q, K and V.
    pub attention_norm: Option<usize>,
    pub query: LinearRef,
    pub key: LinearRef,
    pub value: LinearRef,
    pub output: LinearRef,
    /// The RMSNorm weight before the FFN; `None` when folded into its projections.
    pub ffn_norm: Option<usize>,
    /// The gate projection of a gated FFN (its output goes through the activation).
    pub gate: Option<LinearRef>,
    pub up: LinearRef,
    pub down: LinearRef,
}

/// A recognised T5 encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct T5Graph {
    pub word: usize,
    /// The folded relative-position bias constant, [heads, n, n] or [1, heads, n, n].
    pub position_bias: usize,
    /// The input length n (the model's window).
    pub sequence: usize,
    /// The id the model masks as padding (`NOT_EQUAL(ids, pad)`), if it masks.
    pub pad_id: Option<i32>,
    pub layers: Vec<T5LayerRefs>,
    /// The final RMSNorm's weight, if it is not folded away.
    pub final_norm: Option<usize>,
    pub heads: usize,
    pub d_kv: usize,
    pub eps: f32,
    pub activation: FfnActivation,
    pub gated: bool,
    /// A projection after pooling.
    pub dense: Option<LinearRef>,
    pub normalize: bool,
    /// Some FULLY_CONNECTED quantizes its input rows with a zero point (hybrid int8).
    pub asymmetric_inputs: bool,
}

/// A matched RMSNorm.
struct RmsMatch {
    eps: f32,
    /// The weight constant, when the graph applies it here (else folded or absent).
    weight: Option<usize>,
    /// The tensor the next layers read.
    output: usize,
}

/// A linear layer found reading a tensor, with its fused activation.
struct FoundLinear<'m> {
    op: &'m Operator,
    linear: LinearRef,
    fused_activation: i8,
}

impl<'m> Graph<'m> {
    /// FULLY_CONNECTED layers with a constant weight reading `t` as their input (or a
    /// BATCH_MATMUL with a constant right operand). Fused RELU is allowed here; other fused
    /// activations and packed weight formats are refused.
    fn t5_linears_reading(&self, t: usize) -> Result<Vec<FoundLinear<'m>>, TfliteError> {
        let mut out = Vec::new();
        for &i in &self.consumers[t] {
            let o = self.op(i);
            if o.input(0) != Some(t) {
                continue;
            }
            match (o.code, o.options) {
                (op::FULLY_CONNECTED, options) => {
                    let fused_activation = match options {
                        OpOptions::FullyConnected {
                            fused_activation,
                            weights_format: 0,
                            ..
                        } if fused_activation == 0 || fused_activation == FUSED_RELU => fused_activation,
                        OpOptions::FullyConnected {
                            fused_activation,
                            weights_format,
                            ..
                        } => {
                            return Err(unrecognised(format!(
                                "{}: fused activation {fused_activation} / weights format {weights_format} (octet reads none or RELU, plain weights)",
                                o.label()
                            )))
                        }
                        _ => 0,
                    };
                    let weight = o
                        .input(1)
                        .and_then(|w| self.constant(w))
                        .ok_or_else(|| unrecognised(format!("{}: the weight is not a constant", o.label())))?;
                    if let Some(b) = o.input(2) {
                        return Err(unrecognised(format!(
                            "{}: has a bias {}; T5's projections have none",
                            o.label(),
                            self.label(b)
                        )));
                    }
                    out.push(FoundLinear {
                        op: o,
                        linear: LinearRef {
                            weight,
                            bias: None,
                            transposed: false,
                        },
                        fused_activation,
                    });
                }
                (op::BATCH_MATMUL, OpOptions::BatchMatMul { adj_x: false, adj_y }) => {
                    if let Some(weight) = o.input(1).and_then(|w| self.constant(w)) {
                        out.push(FoundLinear {
                            op: o,
                            linear: LinearRef {
                                weight,
                                bias: None,
                                transposed: !adj_y,
                            },
                            fused_activation: 0,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The one linear layer reading `t`, without a fused activation.
    fn t5_one_linear(&self, t: usize, what: &str) -> Result<(LinearRef, usize), TfliteError> {
        let mut found = self.t5_linears_reading(t)?;
        match (found.len(), found.first().map(|f| f.fused_activation)) {
            (1, Some(0)) => {
                let f = found.remove(0);
                Ok((f.linear, self.out(f.op)?))
            }
            (1, _) => Err(unrecognised(format!(
                "{what}: {} has a fused activation",
                found[0].op.label()
            ))),
            (n, _) => Err(unrecognised(format!(
                "{what}: expected one linear layer reading {}, found {n}",
                self.label(t)
            ))),
        }
    }

    /// Matches the RMSNorm that starts at `x` (module docs).
    fn rms_norm(&self, x: usize, context: &str) -> Result<RmsMatch, TfliteError> {
        let ctx = |step: &str| format!("{context} RMSNorm ({step})");
        let square = self.consumers[x]
            .iter()
            .map(|&i| self.op(i))
            .find(|o| o.code == op::SQUARE || (o.code == op::MUL && o.input(0) == Some(x) && o.input(1) == Some(x)))
            .ok_or_else(|| {
                let found: Vec<String> = self.consumers[x].iter().map(|&i| self.op(i).label()).collect();
                unrecognised(format!(
                    "{}: no SQUARE of {} (its consumers: [{}])",
                    ctx("square"),
                    self.label(x),
                    found.join(", ")
                ))
            })?;
        let mean = self.one_user(self.out(square)?, op::MEAN, &ctx("mean"))?;
        let ms = self.out(mean)?;
        let add_eps = self.one_user(ms, op::ADD, &ctx("epsilon"))?;
        let eps = add_eps
            .inputs
            .iter()
            .flatten()
            .find(|&&t| t != ms)
            .and_then(|&t| self.scalar(t))
            .ok_or_else(|| unrecognised(format!("{}: epsilon is not a scalar constant", ctx("epsilon"))))?;
        let rsqrt = self.one_user(self.out(add_eps)?, op::RSQRT, &ctx("rsqrt"))?;
        let r = self.out(rsqrt)?;
        let scale = self
            .users(x, op::MUL)
            .into_iter()
            .find(|o| o.inputs.contains(&Some(r)))
            .ok_or_else(|| {
                unrecognised(format!(
                    "{}: no MUL of {} by the rsqrt",
                    ctx("normalise"),
                    self.label(x)
                ))
            })?;
        let normalized = self.out(scale)?;
        // A MUL by a [d] constant right after is the weight (unless the converter folded it).
        let d = self.model.tensors[x].shape.last().copied().unwrap_or(0);
        let weight_op = self.users(normalized, op::MUL).into_iter().find_map(|o| {
            let other = o.inputs.iter().flatten().copied().find(|&t| t != normalized)?;
            let c = self.constant(other)?;
            (self.model.tensors[c].numel() == d).then_some((o, c))
        });
        Ok(match weight_op {
            Some((o, c)) => RmsMatch {
                eps,
                weight: Some(c),
                output: self.out(o)?,
            },
            None => RmsMatch {
                eps,
                weight: None,
                output: normalized,
            },
        })
    }

    /// Whether `t` is computed from tensor `source` (within a few operators): how the padding
    /// mask is told from other additions.
    fn derives_from(&self, t: usize, source: usize) -> bool {
        let mut frontier = vec![t];
        for _ in 0..12 {
            let mut next = Vec::new();
            for t in frontier {
                if t == source {
                    return true;
                }
                if let Some(p) = self.producer[t] {
                    next.extend(self.op(p).inputs.iter().flatten().copied());
                }
            }
            if next.is_empty() {
                return false;
            }
            frontier = next;
        }
        false
    }

    /// The other input of a binary operator.
    fn other_input(&self, o: &Operator, t: usize) -> Option<usize> {
        if o.input(0) == Some(t) {
            o.input(1)
        } else {
            o.input(0)
        }
    }
}

/// Walks the graph of `model` and recognises a T5 encoder (see the module docs).
pub fn recognise(model: &TfliteModel) -> Result<T5Graph, TfliteError> {
    let g = Graph::new(model);
    let emb = find_embedding(&g)?;
    let d = model.tensors[emb.table].shape[1];
    let sequence = match model.tensors[emb.input].shape[..] {
        [1, n] | [n] if n > 0 => n,
        ref s => return Err(unrecognised(format!("token-id input of shape {s:?}, expected [1, n]"))),
    };
    let pad_id = g
        .users(emb.ids, op::NOT_EQUAL)
        .into_iter()
        .find_map(|o| g.other_input(o, emb.ids))
        .and_then(|c| g.constant(c))
        .and_then(|c| model.i32_values(&model.tensors[c]).ok())
        .and_then(|v| (v.len() == 1).then(|| v[0]));

    let mut x = emb.rows;
    let mut layers = Vec::new();
    let (mut eps, mut heads, mut bias, mut form) = (None, None, None, None);
    let final_norm = loop {
        let i = layers.len();
        let ctx = format!("layer {i}");
        let norm = g.rms_norm(x, if i == 0 { "layer 0" } else { &ctx })?;
        if (*eps.get_or_insert(norm.eps) - norm.eps).abs() > norm.eps.abs() * 1e-3 {
            return Err(unrecognised(format!(
                "{ctx}: RMSNorm epsilon {} differs from layer 0's",
                norm.eps
            )));
        }
        let qkv = g.t5_linears_reading(norm.output)?;
        if qkv.is_empty() {
            if i == 0 {
                return Err(unrecognised("no linear layer reads the first RMSNorm"));
            }
            break norm;
        }
        if qkv.len() != 3 || qkv.iter().any(|f| f.fused_activation != 0) {
            return Err(unrecognised(format!(
                "{ctx}: expected 3 plain linear layers (query, key, value) after the RMSNorm, found {}",
                qkv.len()
            )));
        }
        // Where each projection enters an attention product: (linear, product, operand slot).
        let mut entries = Vec::new();
        for f in &qkv {
            let result = g.out(f.op)?;
            if heads.is_none() {
                if let [.., a, b] = model.tensors[g.through_layout_first_reshape(result)].shape[..] {
                    if a > 0 && b > 0 && model.tensors[f.linear.weight].shape.contains(&(a * b)) {
                        heads = Some((a, b));
                    }
                }
            }
            let shaped = g.through_layout(result);
            let bmm = g
                .users(shaped, op::BATCH_MATMUL)
                .into_iter()
                .next()
                .ok_or_else(|| unrecognised(format!("{ctx}: {} does not reach a BATCH_MATMUL", f.op.label())))?;
            let slot = if bmm.input(0) == Some(shaped) { 0 } else { 1 };
            entries.push((f.linear, bmm.index, slot));
        }
        let AttentionRoles {
            query,
            key,
            value,
            scores_op,
            context_op,
        } = attention_roles(&entries, &ctx)?;

        // scores -> ADD (bias, mask) ... -> SOFTMAX; T5 does not scale the scores.
        let mut t = g.out(g.op(scores_op))?;
        let mut layer_bias = None;
        let softmax = loop {
            let next = match g.consumers[t].as_slice() {
                [i] => g.op(*i),
                _ => {
                    return Err(unrecognised(format!(
                        "{ctx}: the attention scores {} have no single consumer",
                        g.label(t)
                    )))
                }
            };
            match next.code {
                op::SOFTMAX => break next,
                op::ADD => {
                    let other = g
                        .other_input(next, t)
                        .ok_or_else(|| unrecognised(format!("{} has one input", next.label())))?;
                    for (c, from_ids) in bias_terms(&g, other, emb.ids) {
                        match c {
                            Some(c) if layer_bias.is_none() => layer_bias = Some(c),
                            Some(c) => {
                                return Err(unrecognised(format!(
                                    "{ctx}: a second constant {} is added to the scores",
                                    g.label(c)
                                )))
                            }
                            None if from_ids => {}
                            None => {
                                return Err(unrecognised(format!(
                                    "{ctx}: {} adds {}, neither a constant bias nor the padding mask",
                                    next.label(),
                                    g.label(other)
                                )))
                            }
                        }
                    }
                    t = g.out(next)?;
                }
                _ => {
                    return Err(unrecognised(format!(
                        "{ctx}: {} between the scores and SOFTMAX (octet's T5 adds a position bias and does not scale)",
                        next.label()
                    )))
                }
            }
        };
        let layer_bias = layer_bias.ok_or_else(|| {
            unrecognised(format!(
                "{ctx}: no constant relative-position bias is added to the scores"
            ))
        })?;
        if *bias.get_or_insert(layer_bias) != layer_bias {
            return Err(unrecognised(format!(
                "{ctx}: adds its own position bias {}; T5 shares one across layers",
                g.label(layer_bias)
            )));
        }
        if g.op(context_op).input(0) != Some(g.out(softmax)?) {
            return Err(unrecognised(format!(
                "{ctx}: the value product does not read the softmax"
            )));
        }
        let context = g.through_layout(g.out(g.op(context_op))?);
        let (output, o_out) = g.t5_one_linear(context, &format!("{ctx} attention output"))?;
        let after_attention = g.add_of(o_out, x, &ctx)?;

        let ffn_norm = g.rms_norm(after_attention, &format!("{ctx} FFN"))?;
        let (gate, up, act, inner) = feed_forward(&g, ffn_norm.output, &ctx)?;
        let gated = gate.is_some();
        if *form.get_or_insert((gated, act)) != (gated, act) {
            return Err(unrecognised(format!("{ctx}: the FFN differs from layer 0's")));
        }
        let (down, down_out) = g.t5_one_linear(inner, &format!("{ctx} FFN down"))?;
        x = g.add_of(down_out, after_attention, &ctx)?;
        layers.push(T5LayerRefs {
            attention_norm: norm.weight,
            query,
            key,
            value,
            output,
            ffn_norm: ffn_norm.weight,
            gate,
            up,
            down,
        });
    };
    let (heads, d_kv) = heads.ok_or_else(|| {
        unrecognised("no RESHAPE into attention heads ([..., heads, d_kv]) after the query projection")
    })?;
    if d == 0 || heads == 0 || d_kv == 0 {
        return Err(unrecognised("zero-sized embeddings or attention heads"));
    }
    let position_bias = bias.ok_or_else(|| unrecognised("no position bias"))?;
    let (gated, activation) = form.unwrap_or((false, FfnActivation::Relu));

    // Pooling: masked mean (MUL by the mask, SUM, divide by the count) or MEAN.
    let last = final_norm.output;
    let pooled = if let Some(mean) = g.users(last, op::MEAN).first() {
        g.out(mean)?
    } else {
        let mul = g
            .users(last, op::MUL)
            .into_iter()
            .find(|o| g.other_input(o, last).is_some_and(|m| g.derives_from(m, emb.ids)))
            .ok_or_else(|| {
                unrecognised(format!(
                    "pooling: {} is neither averaged (MEAN) nor multiplied by the padding mask",
                    g.label(last)
                ))
            })?;
        let sum = g.one_user(g.out(mul)?, op::SUM, "pooling (sum over tokens)")?;
        let div = g.one_user(g.out(sum)?, op::DIV, "pooling (division by the token count)")?;
        if div.input(0) != Some(g.out(sum)?) || !div.input(1).is_some_and(|c| g.derives_from(c, emb.ids)) {
            return Err(unrecognised(format!(
                "pooling: {} does not divide by the number of unmasked tokens",
                div.label()
            )));
        }
        g.out(div)?
    };
    let mut result = pooled;
    let mut dense = None;
    let after_pooling = g.t5_linears_reading(pooled)?;
    if !after_pooling.is_empty() {
        let (lin, out) = g.t5_one_linear(pooled, "dense projection after pooling")?;
        dense = Some(lin);
        result = out;
    }
    let normalize = match g.consumers[result].as_slice() {
        [i] if g.op(*i).code == op::L2_NORMALIZATION => {
            let out = g.out(g.op(*i))?;
            if !model.outputs.contains(&out) {
                return Err(unrecognised(format!(
                    "pooling: the L2 normalised {} is not a model output",
                    g.label(out)
                )));
            }
            true
        }
        _ if model.outputs.contains(&result) => false,
        _ => {
            return Err(unrecognised(format!(
                "pooling: {} is neither an output nor L2 normalised",
                g.label(result)
            )))
        }
    };
    Ok(T5Graph {
        word: emb.table,
        position_bias,
        sequence,
        pad_id,
        layers,
        final_norm: final_norm.weight,
        heads,
        d_kv,
        eps: eps.unwrap_or(1e-6),
        activation,
        gated,
        dense,
        normalize,
        asymmetric_inputs: model.operators.iter().any(|o| {
            matches!(
                o.options,
                OpOptions::FullyConnected {
                    asymmetric_quantize_inputs: true,
                    ..
                }
            )
        }),
    })
}

/// The terms behind tensor `t` added to the scores: `(Some(constant), _)` for a constant,
/// `(None, true)` for a term computed from the token ids (the padding mask), `(None, false)`
/// otherwise. Looks through one ADD (the converter adds the mask to the bias once, and every
/// layer adds the sum).
fn bias_terms(g: &Graph, t: usize, ids: usize) -> Vec<(Option<usize>, bool)> {
    if let Some(c) = g.constant(t) {
        return vec![(Some(c), false)];
    }
    if let Some(p) = g.producer[t].map(|i| g.op(i)).filter(|o| o.code == op::ADD) {
        return p
            .inputs
            .iter()
            .flatten()
            .map(|&i| match g.constant(i) {
                Some(c) => (Some(c), false),
                None => (None, g.derives_from(i, ids)),
            })
            .collect();
    }
    vec![(None, g.derives_from(t, ids))]
}

/// Matches the FFN reading `normed`: returns (gate, up, activation, the tensor the down
/// projection reads).
fn feed_forward(
    g: &Graph,
    normed: usize,
    ctx: &str,
) -> Result<(Option<LinearRef>, LinearRef, FfnActivation, usize), TfliteError> {
    let found = g.t5_linears_reading(normed)?;
    let activation_after = |t: usize| -> Option<(FfnActivation, usize)> {
        let [i] = g.consumers[t].as_slice() else { return None };
        let o = g.op(*i);
        let act = match (o.code, o.options) {
            (op::RELU, _) => FfnActivation::Relu,
            (op::GELU, OpOptions::Gelu { approximate: true }) => FfnActivation::GeluTanh,
            (op::GELU, _) => FfnActivation::GeluErf,
            _ => return None,
        };
        Some((act, g.out(o).ok()?))
    };
    match found.as_slice() {
        [f] => {
            let out = g.out(f.op)?;
            if f.fused_activation == FUSED_RELU {
                return Ok((None, f.linear, FfnActivation::Relu, out));
            }
            let (act, activated) = activation_after(out).ok_or_else(|| {
                unrecognised(format!(
                    "{ctx}: the FFN projection {} is not followed by RELU or GELU",
                    f.op.label()
                ))
            })?;
            Ok((None, f.linear, act, activated))
        }
        [a, b] => {
            let (a_out, b_out) = (g.out(a.op)?, g.out(b.op)?);
            let fused = |f: &FoundLinear| f.fused_activation == FUSED_RELU;
            let (gate, up, (act, activated)) =
                match (fused(a), fused(b), activation_after(a_out), activation_after(b_out)) {
                    (true, false, ..) => (a, b, (FfnActivation::Relu, a_out)),
                    (false, true, ..) => (b, a, (FfnActivation::Relu, b_out)),
                    (false, false, Some(x), None) => (a, b, x),
                    (false, false, None, Some(x)) => (b, a, x),
                    _ => {
                        return Err(unrecognised(format!(
                            "{ctx}: gated FFN: exactly one of {} and {} must go through an activation",
                            a.op.label(),
                            b.op.label()
                        )))
                    }
                };
            let up_out = g.out(up.op)?;
            let product = g
                .users(activated, op::MUL)
                .into_iter()
                .find(|o| o.inputs.contains(&Some(up_out)))
                .ok_or_else(|| {
                    unrecognised(format!(
                        "{ctx}: gated FFN: no MUL of the activated gate and the up projection"
                    ))
                })?;
            Ok((Some(gate.linear), up.linear, act, g.out(product)?))
        }
        other => Err(unrecognised(format!(
            "{ctx}: expected one or two FFN projections after the RMSNorm, found {}",
            other.len()
        ))),
    }
}

#[cfg(test)]
mod tests;
