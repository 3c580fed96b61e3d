//! Recognises a BERT encoder in a TFLite graph, as TensorFlow's converter or litert-torch
//! (PyTorch -> TFLite) writes one, and names its constant tensors in the engine's terms
//! (`crates/octet/src/model/bert.rs`).
//!
//! Converted files name tensors after the ops that made them (`MatMul_7;add_12`), so the walk
//! follows the data flow instead, from the int32 token-id input:
//!
//! ```text
//! ids -> [RESHAPE] -> GATHER(word table) | EMBEDDING_LOOKUP(ids, word table) [-> DEQUANTIZE] [-> RESHAPE]
//!     -> ADD position rows / token-type row ... -> LayerNorm -> per layer:
//!        3 x FULLY_CONNECTED -> RESHAPE/TRANSPOSE -> BATCH_MATMUL(Q, K) [-> MUL|DIV scale] [-> ADD zero mask] -> SOFTMAX
//!          -> [RESHAPE] -> BATCH_MATMUL(., V) -> TRANSPOSE/RESHAPE -> FULLY_CONNECTED (output) -> ADD residual -> LayerNorm
//!          -> FULLY_CONNECTED (up) -> GELU -> FULLY_CONNECTED (down) -> ADD residual -> LayerNorm
//!     -> MEAN over tokens [-> L2 normalisation] -> output
//! ```
//!
//! The two converters differ in a few places, and the walk takes either form at each:
//!
//! | step | TensorFlow's converter | litert-torch 0.10 |
//! |---|---|---|
//! | token table | GATHER(table, ids) | EMBEDDING_LOOKUP(ids, table) -> RESHAPE [1, n, h] |
//! | positions, token type | a slice of the position table; a [h] row | both folded to [1, n, h] constants (fixed n); the token-type one has n equal rows |
//! | LayerNorm | `(x - mean) * rsqrt(var + eps)`: SUB, MUL | `x * r + (0 - r * mean)`: MUL, ADD of SUB(0, MUL(r, mean)), statistics RESHAPEd to [.., n, 1] |
//! | score scale | MUL or DIV by a scalar | MUL (eager attention); none with SDPA attention, whose scale is folded into the projections ([`BertGraph::query_scale`]) |
//! | attention mask | none | ADD of SELECT_V2(constant condition, 0, min) to the scores: accepted only when it is all zeros |
//! | L2 normalisation | L2_NORMALIZATION | `x / max(POW(SUM(x * x), 0.5), eps)` |
//!
//! Both then read the LayerNorm the same way: `(x - mean) * rsqrt(var + eps)`, times gamma,
//! plus beta (MEAN, SQUARED_DIFFERENCE, MEAN, ADD eps, RSQRT shared). Both fold gamma and beta
//! into the FULLY_CONNECTED layers that read a LayerNorm (they then read the normalised values
//! before gamma and beta): the walk accepts either form and reports which
//! ([`BertGraph::folded_norms`]); the engine has a mode for the folded one. Both write
//! dynamic-range int8 as symmetric per-channel int8 weights; TensorFlow's FULLY_CONNECTED
//! quantizes activation rows asymmetrically (`asymmetric_quantize_inputs`), litert-torch's
//! symmetrically ([`BertGraph::asymmetric_inputs`]). Query, key and value are told apart by
//! where they enter the two attention products, not by their order in the file. Anything else
//! gets a [`TfliteError::Unrecognised`] naming the operator or tensor where the walk stopped,
//! and where the forms differ (the table lookup, LayerNorm, the mask, pooling), what each form
//! expected there.

use super::model::{op, OpOptions, Operator, TfliteModel};
use super::TfliteError;
use std::collections::BTreeMap;

/// A linear layer: weight [n, k] (FULLY_CONNECTED's layout) and optional bias [n].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearRef {
    /// The constant weight tensor (possibly int8, possibly behind a DEQUANTIZE).
    pub weight: usize,
    pub bias: Option<usize>,
    /// The weight is stored [k, n] (a BATCH_MATMUL with a constant right operand).
    pub transposed: bool,
}

/// A LayerNorm's gamma and beta tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormRef {
    pub weight: usize,
    pub bias: usize,
}

/// One encoder layer's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerRefs {
    pub query: LinearRef,
    pub key: LinearRef,
    pub value: LinearRef,
    pub output: LinearRef,
    pub attention_norm: NormRef,
    pub up: LinearRef,
    pub down: LinearRef,
    pub ffn_norm: NormRef,
}

/// What the model does after the last layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolingFound {
    /// Mean over the tokens (the only pooling recognised).
    pub mean: bool,
    /// L2 normalisation after pooling.
    pub normalize: bool,
}

/// A recognised BERT encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct BertGraph {
    pub word: usize,
    /// The position table [positions, h] (sliced to the sequence length in the graph), if any.
    pub position: Option<usize>,
    /// Constant rows [h] or [1, h] added to every token's embedding (token type 0).
    pub token_type: Vec<usize>,
    pub embeddings_norm: NormRef,
    pub layers: Vec<LayerRefs>,
    pub heads: usize,
    pub eps: f32,
    /// GELU with the tanh approximation (else erf).
    pub gelu_tanh: bool,
    /// The linear layers after each LayerNorm read the values before its gamma and beta.
    pub folded_norms: bool,
    /// What the query projection's weights and bias must be multiplied by for the engine's
    /// 1/sqrt(head_dim) score scale: 1, or sqrt(head_dim) when the graph does not scale the
    /// scores (litert-torch's SDPA lowering folds the scale into the projections; scores are
    /// bilinear in query and key, so where it was folded does not matter).
    pub query_scale: f32,
    /// Some FULLY_CONNECTED has `asymmetric_quantize_inputs`: its hybrid (int8-weight) form
    /// quantizes each activation row with a zero point.
    pub asymmetric_inputs: bool,
    pub pooling: PoolingFound,
}

pub(super) fn unrecognised(msg: impl Into<String>) -> TfliteError {
    TfliteError::Unrecognised(msg.into())
}

/// The text of an error without its kind's prefix, to nest in another message.
fn message(e: &TfliteError) -> String {
    match e {
        TfliteError::Unrecognised(m) | TfliteError::Invalid(m) | TfliteError::Io(m) => m.clone(),
    }
}

/// The operator graph with producer and consumer links (shared with [`super::t5`]).
pub(super) struct Graph<'m> {
    pub(super) model: &'m TfliteModel,
    pub(super) producer: Vec<Option<usize>>,
    pub(super) consumers: Vec<Vec<usize>>,
}

/// A matched LayerNorm.
struct LayerNormMatch {
    eps: f32,
    norm: NormRef,
    /// (x - mean) * rsqrt(var + eps), before gamma and beta.
    normalized: usize,
    /// The output after gamma and beta.
    output: usize,
}

impl<'m> Graph<'m> {
    pub(super) fn new(model: &'m TfliteModel) -> Graph<'m> {
        let mut producer = vec![None; model.tensors.len()];
        let mut consumers = vec![Vec::new(); model.tensors.len()];
        for o in &model.operators {
            for &t in &o.outputs {
                producer[t] = Some(o.index);
            }
            for t in o.inputs.iter().flatten() {
                if !consumers[*t].contains(&o.index) {
                    consumers[*t].push(o.index);
                }
            }
        }
        Graph {
            model,
            producer,
            consumers,
        }
    }

    pub(super) fn op(&self, i: usize) -> &'m Operator {
        &self.model.operators[i]
    }

    pub(super) fn label(&self, t: usize) -> String {
        self.model.tensors[t].label()
    }

    /// Consumers of tensor `t` with builtin `code`.
    pub(super) fn users(&self, t: usize, code: i32) -> Vec<&'m Operator> {
        self.consumers[t]
            .iter()
            .map(|&i| self.op(i))
            .filter(|o| o.code == code)
            .collect()
    }

    /// The single consumer of `t` with `code`, or an error describing what was there.
    pub(super) fn one_user(&self, t: usize, code: i32, context: &str) -> Result<&'m Operator, TfliteError> {
        let users = self.users(t, code);
        match users.as_slice() {
            [o] => Ok(o),
            _ => {
                let found: Vec<String> = self.consumers[t].iter().map(|&i| self.op(i).label()).collect();
                Err(unrecognised(format!(
                    "{context}: expected one {} reading tensor {}, found consumers [{}]",
                    op::name(code),
                    self.label(t),
                    found.join(", ")
                )))
            }
        }
    }

    /// The first output of an operator.
    pub(super) fn out(&self, o: &Operator) -> Result<usize, TfliteError> {
        o.outputs
            .first()
            .copied()
            .ok_or_else(|| unrecognised(format!("{} has no output", o.label())))
    }

    /// The constant behind `t`: `t` itself, or the input of the DEQUANTIZE that made it.
    pub(super) fn constant(&self, t: usize) -> Option<usize> {
        if self.model.tensors[t].is_constant() {
            return Some(t);
        }
        let p = self.op(self.producer[t]?);
        if p.code == op::DEQUANTIZE {
            let src = p.input(0)?;
            return self.model.tensors[src].is_constant().then_some(src);
        }
        None
    }

    /// The value of a scalar (one-element) f32 constant.
    pub(super) fn scalar(&self, t: usize) -> Option<f32> {
        let c = self.constant(t)?;
        let values = self.model.f32_values(&self.model.tensors[c]).ok()?;
        (values.len() == 1).then(|| values[0])
    }

    /// Follows `t` through single-consumer RESHAPE / TRANSPOSE / SQUEEZE / CAST operators.
    pub(super) fn through_layout(&self, mut t: usize) -> usize {
        loop {
            match self.consumers[t].as_slice() {
                [i] if matches!(self.op(*i).code, op::RESHAPE | op::TRANSPOSE | op::SQUEEZE | op::CAST)
                    && self.op(*i).input(0) == Some(t) =>
                {
                    match self.op(*i).outputs.first() {
                        Some(&next) => t = next,
                        None => return t,
                    }
                }
                _ => return t,
            }
        }
    }

    /// The linear layers reading `t`: FULLY_CONNECTED with a constant weight, or BATCH_MATMUL
    /// with a constant right operand.
    fn linears_reading(&self, t: usize) -> Result<Vec<(&'m Operator, LinearRef)>, TfliteError> {
        let mut out = Vec::new();
        for &i in &self.consumers[t] {
            let o = self.op(i);
            if o.input(0) != Some(t) {
                continue;
            }
            match (o.code, o.options) {
                (op::FULLY_CONNECTED, options) => {
                    if let OpOptions::FullyConnected {
                        fused_activation,
                        weights_format,
                        ..
                    } = options
                    {
                        if fused_activation != 0 || weights_format != 0 {
                            return Err(unrecognised(format!("{}: fused activation {fused_activation} / weights format {weights_format} (octet reads plain FULLY_CONNECTED only)", o.label())));
                        }
                    }
                    let weight = o
                        .input(1)
                        .and_then(|w| self.constant(w))
                        .ok_or_else(|| unrecognised(format!("{}: the weight is not a constant", o.label())))?;
                    let bias = o
                        .input(2)
                        .map(|b| {
                            self.constant(b)
                                .ok_or_else(|| unrecognised(format!("{}: the bias is not a constant", o.label())))
                        })
                        .transpose()?;
                    out.push((
                        o,
                        LinearRef {
                            weight,
                            bias,
                            transposed: false,
                        },
                    ));
                }
                (op::BATCH_MATMUL, OpOptions::BatchMatMul { adj_x: false, adj_y }) => {
                    if let Some(weight) = o.input(1).and_then(|w| self.constant(w)) {
                        out.push((
                            o,
                            LinearRef {
                                weight,
                                bias: None,
                                transposed: !adj_y,
                            },
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Adds the bias of a BATCH_MATMUL linear (an ADD of a constant right after it), and
    /// returns the tensor that carries the layer's result.
    fn linear_result(&self, o: &Operator, lin: &mut LinearRef) -> Result<usize, TfliteError> {
        let out = self.out(o)?;
        if o.code != op::BATCH_MATMUL {
            return Ok(out);
        }
        if let [i] = self.consumers[out].as_slice() {
            let add = self.op(*i);
            if add.code == op::ADD {
                let other = if add.input(0) == Some(out) {
                    add.input(1)
                } else {
                    add.input(0)
                };
                if let Some(b) = other.and_then(|b| self.constant(b)) {
                    lin.bias = Some(b);
                    return self.out(add);
                }
            }
        }
        Ok(out)
    }

    /// Matches the LayerNorm that starts at tensor `x` in either lowering (see the module
    /// docs); when neither matches, the error says where each one stopped.
    fn layer_norm(&self, x: usize, context: &str) -> Result<LayerNormMatch, TfliteError> {
        let ctx = format!("{context} LayerNorm");
        let (eps, normalized) = match self.normalize_tf(x, &ctx) {
            Ok(found) => found,
            Err(tf) => self.normalize_torch(x, &ctx).map_err(|torch| {
                unrecognised(format!(
                    "{ctx} reading {}: neither TensorFlow's lowering ({}) nor litert-torch's ({})",
                    self.label(x),
                    message(&tf),
                    message(&torch)
                ))
            })?,
        };
        self.gamma_beta(normalized, eps, &ctx)
    }

    /// TensorFlow's lowering up to the normalised values: MEAN, SQUARED_DIFFERENCE, MEAN,
    /// ADD eps, RSQRT, SUB mean, MUL. Returns (eps, normalised tensor).
    fn normalize_tf(&self, x: usize, ctx: &str) -> Result<(f32, usize), TfliteError> {
        let ctx = |step: &str| format!("{ctx} ({step})");
        let mean = self.one_user(x, op::MEAN, &ctx("mean"))?;
        let m = self.out(mean)?;
        let (eps, r) = self.inverse_std(x, &ctx("variance"))?;
        let sub = self
            .users(x, op::SUB)
            .into_iter()
            .find(|o| o.input(0) == Some(x) && o.input(1) == Some(m))
            .ok_or_else(|| unrecognised(format!("{}: no SUB of the mean from {}", ctx("centre"), self.label(x))))?;
        let d = self.out(sub)?;
        let scale = self
            .users(d, op::MUL)
            .into_iter()
            .find(|o| o.inputs.contains(&Some(r)))
            .ok_or_else(|| {
                unrecognised(format!(
                    "{}: no MUL of the centred values by the rsqrt",
                    ctx("normalise")
                ))
            })?;
        Ok((eps, self.out(scale)?))
    }

    /// litert-torch's lowering up to the normalised values: `x * r + (0 - r * mean)` with
    /// `r = RSQRT(MEAN(SQUARED_DIFFERENCE(x, mean)) + eps)`, the per-token statistics
    /// RESHAPEd to [.., n, 1] where they meet `x`. Returns (eps, normalised tensor).
    fn normalize_torch(&self, x: usize, ctx: &str) -> Result<(f32, usize), TfliteError> {
        let ctx = |step: &str| format!("{ctx} ({step})");
        let mean = self.one_user(x, op::MEAN, &ctx("mean"))?;
        let m = self.out(mean)?;
        let (eps, r) = self.inverse_std(x, &ctx("variance"))?;
        let scaled = self
            .users(x, op::MUL)
            .into_iter()
            .find(|o| {
                o.inputs
                    .iter()
                    .flatten()
                    .any(|&t| t != x && self.before_reshapes(t) == r)
            })
            .ok_or_else(|| unrecognised(format!("{}: no MUL of {} by the rsqrt", ctx("scale"), self.label(x))))?;
        let scaled_out = self.out(scaled)?;
        let shift_add = self.one_user(scaled_out, op::ADD, &ctx("shift"))?;
        let shift = shift_add
            .inputs
            .iter()
            .flatten()
            .copied()
            .find(|&t| t != scaled_out)
            .map(|t| self.before_reshapes(t))
            .ok_or_else(|| unrecognised(format!("{}: {} has one input", ctx("shift"), shift_add.label())))?;
        // shift = 0 - r * mean
        let is_shift = self.producer[shift].map(|i| self.op(i)).is_some_and(|sub| {
            sub.code == op::SUB
                && sub.input(0).and_then(|z| self.scalar(z)) == Some(0.0)
                && sub
                    .input(1)
                    .and_then(|t| self.producer[t])
                    .map(|i| self.op(i))
                    .is_some_and(|mul| {
                        mul.code == op::MUL && mul.inputs.contains(&Some(r)) && mul.inputs.contains(&Some(m))
                    })
        });
        if !is_shift {
            return Err(unrecognised(format!(
                "{}: {} does not add -(rsqrt x mean)",
                ctx("shift"),
                shift_add.label()
            )));
        }
        Ok((eps, self.out(shift_add)?))
    }

    /// The variance branch both lowerings share: SQUARED_DIFFERENCE(x, mean) -> MEAN -> ADD
    /// eps -> RSQRT. Returns (eps, the RSQRT's output).
    fn inverse_std(&self, x: usize, ctx: &str) -> Result<(f32, usize), TfliteError> {
        let sqd = self.one_user(x, op::SQUARED_DIFFERENCE, ctx)?;
        let var = self.one_user(self.out(sqd)?, op::MEAN, &format!("{ctx} mean"))?;
        let v = self.out(var)?;
        let add_eps = self.one_user(v, op::ADD, &format!("{ctx} epsilon"))?;
        let eps_tensor = if add_eps.input(0) == Some(v) {
            add_eps.input(1)
        } else {
            add_eps.input(0)
        };
        let eps = eps_tensor
            .and_then(|t| self.scalar(t))
            .ok_or_else(|| unrecognised(format!("{ctx} epsilon: not a scalar constant")))?;
        let rsqrt = self.one_user(self.out(add_eps)?, op::RSQRT, &format!("{ctx} rsqrt"))?;
        Ok((eps, self.out(rsqrt)?))
    }

    /// The MUL by gamma and ADD of beta after the normalised values.
    fn gamma_beta(&self, normalized: usize, eps: f32, ctx: &str) -> Result<LayerNormMatch, TfliteError> {
        let ctx = |step: &str| format!("{ctx} ({step})");
        let gamma_op = self
            .users(normalized, op::MUL)
            .into_iter()
            .find(|o| {
                o.inputs
                    .iter()
                    .flatten()
                    .any(|&t| t != normalized && self.constant(t).is_some())
            })
            .ok_or_else(|| {
                unrecognised(format!(
                    "{}: no MUL of {} by a constant gamma",
                    ctx("gamma"),
                    self.label(normalized)
                ))
            })?;
        let weight = gamma_op
            .inputs
            .iter()
            .flatten()
            .find_map(|&t| if t != normalized { self.constant(t) } else { None })
            .ok_or_else(|| unrecognised(format!("{}: gamma is not a constant", ctx("gamma"))))?;
        let g = self.out(gamma_op)?;
        let beta_op = self.one_user(g, op::ADD, &ctx("beta"))?;
        let bias = beta_op
            .inputs
            .iter()
            .flatten()
            .copied()
            .find(|&t| t != g)
            .and_then(|t| self.constant(t))
            .ok_or_else(|| unrecognised(format!("{}: beta is not a constant", ctx("beta"))))?;
        Ok(LayerNormMatch {
            eps,
            norm: NormRef { weight, bias },
            normalized,
            output: self.out(beta_op)?,
        })
    }

    /// `t`, or the tensor a chain of RESHAPEs made it from.
    fn before_reshapes(&self, mut t: usize) -> usize {
        while let Some(o) = self.producer[t].map(|i| self.op(i)) {
            match (o.code, o.input(0)) {
                (op::RESHAPE, Some(src)) => t = src,
                _ => break,
            }
        }
        t
    }

    /// True when the constant `t` has [.., rows, h] values whose rows are all the same (a
    /// single row broadcast, as litert-torch folds the token-type row over the sequence).
    fn rows_identical(&self, t: usize, h: usize) -> bool {
        match self.model.f32_values(&self.model.tensors[t]) {
            Ok(v) if h > 0 && v.len() % h == 0 && v.len() > h => v.chunks_exact(h).all(|row| row == &v[..h]),
            _ => false,
        }
    }

    /// True when `t` is an attention mask that adds nothing: an all-zero constant, or
    /// litert-torch's SELECT_V2(condition, a, b) where a constant condition (possibly through
    /// BROADCAST_TO / RESHAPE) picks a zero scalar everywhere.
    fn is_zero_mask(&self, t: usize) -> bool {
        if let Some(c) = self.constant(t) {
            return self
                .model
                .f32_values(&self.model.tensors[c])
                .is_ok_and(|v| v.iter().all(|&x| x == 0.0));
        }
        let Some(select) = self.producer[t].map(|i| self.op(i)) else {
            return false;
        };
        if select.code != op::SELECT_V2 {
            return false;
        }
        let mut cond = match select.input(0) {
            Some(c) => c,
            None => return false,
        };
        while let Some(o) = self.producer[cond].map(|i| self.op(i)) {
            match (o.code, o.input(0)) {
                (op::BROADCAST_TO | op::RESHAPE, Some(src)) => cond = src,
                _ => return false,
            }
        }
        let Some(values) = self.bool_values(cond) else {
            return false;
        };
        let zero = |i: usize| select.input(i).and_then(|v| self.scalar(v)) == Some(0.0);
        (values.iter().all(|&b| b) && zero(1)) || (values.iter().all(|&b| !b) && zero(2))
    }

    /// A constant BOOL tensor's values (schema TensorType 6, one byte each).
    fn bool_values(&self, t: usize) -> Option<Vec<bool>> {
        let tensor = &self.model.tensors[t];
        if tensor.dtype != super::TensorType::Other(6) {
            return None;
        }
        let bytes = self.model.data(tensor)?;
        (bytes.len() == tensor.numel()).then(|| bytes.iter().map(|&b| b != 0).collect())
    }

    /// The ADD of `a` and `b` (either order).
    pub(super) fn add_of(&self, a: usize, b: usize, context: &str) -> Result<usize, TfliteError> {
        let add = self
            .users(a, op::ADD)
            .into_iter()
            .find(|o| o.inputs.contains(&Some(b)))
            .ok_or_else(|| {
                unrecognised(format!(
                    "{context}: no ADD of {} and the residual {}",
                    self.label(a),
                    self.label(b)
                ))
            })?;
        self.out(add)
    }
}

/// Finds the GATHER of the token table reached from an int32 / int64 model input.
/// The token-embedding look-up found from a token-id input.
pub(super) struct EmbeddingLookup {
    /// The int32 / int64 model input.
    pub input: usize,
    /// The ids as the look-up reads them (after any RESHAPE).
    pub ids: usize,
    /// The constant [vocab, hidden] table.
    pub table: usize,
    /// The looked-up (and dequantized) rows.
    pub rows: usize,
}

/// Finds the look-up of a constant token table reached from a token-id input: GATHER(table,
/// ids) as TensorFlow writes it, EMBEDDING_LOOKUP(ids, table) as litert-torch does, each maybe
/// followed by a DEQUANTIZE of the rows (shared with [`super::t5`]).
pub(super) fn find_embedding(g: &Graph) -> Result<EmbeddingLookup, TfliteError> {
    let m = g.model;
    for &input in &m.inputs {
        if !matches!(m.tensors[input].dtype, super::TensorType::I32 | super::TensorType::I64) {
            continue;
        }
        let ids = g.through_layout(input);
        // TensorFlow: GATHER(table, ids); litert-torch: EMBEDDING_LOOKUP(ids, table).
        let lookups = g
            .users(ids, op::GATHER)
            .into_iter()
            .filter(|o| o.input(1) == Some(ids))
            .map(|o| (o, o.input(0)))
            .chain(
                g.users(ids, op::EMBEDDING_LOOKUP)
                    .into_iter()
                    .filter(|o| o.input(0) == Some(ids))
                    .map(|o| (o, o.input(1))),
            );
        for (o, table) in lookups {
            if let Some(table) = table.and_then(|t| g.constant(t)) {
                if m.tensors[table].shape.len() == 2 {
                    let mut out = g.out(o)?;
                    if let [i] = g.consumers[out].as_slice() {
                        if g.op(*i).code == op::DEQUANTIZE {
                            out = g.out(g.op(*i))?;
                        }
                    }
                    // litert-torch looks up [n, h] rows and RESHAPEs them to [1, n, h].
                    return Ok(EmbeddingLookup {
                        input,
                        ids,
                        table,
                        rows: g.through_layout(out),
                    });
                }
            }
        }
    }
    let inputs: Vec<String> = m
        .inputs
        .iter()
        .map(|&i| {
            format!(
                "{} {} {:?}",
                g.label(i),
                m.tensors[i].dtype.as_str(),
                m.tensors[i].shape
            )
        })
        .collect();
    Err(unrecognised(format!(
        "no GATHER (TensorFlow) or EMBEDDING_LOOKUP (litert-torch) of a constant [vocab, hidden] table reached from an int32 token-id input (inputs: {})",
        inputs.join(", ")
    )))
}

/// The projections of one attention block, told apart by where they enter the two products.
pub(super) struct AttentionRoles {
    pub query: LinearRef,
    pub key: LinearRef,
    pub value: LinearRef,
    /// The BATCH_MATMUL of query and key.
    pub scores_op: usize,
    /// The BATCH_MATMUL that reads the value.
    pub context_op: usize,
}

/// Assigns query, key and value from `entries`: (projection, the BATCH_MATMUL it reaches, the
/// operand slot it enters). The product two projections enter is the scores (query in slot 0,
/// key in slot 1); the third is the value. Shared with [`super::t5`].
pub(super) fn attention_roles(entries: &[(LinearRef, usize, usize)], ctx: &str) -> Result<AttentionRoles, TfliteError> {
    let scores_op = entries
        .iter()
        .map(|e| e.1)
        .find(|&b| entries.iter().filter(|e| e.1 == b).count() == 2)
        .ok_or_else(|| unrecognised(format!("{ctx}: no BATCH_MATMUL of two projections (query x key)")))?;
    let pick = |slot: usize| entries.iter().find(|e| e.1 == scores_op && e.2 == slot).map(|e| e.0);
    let (Some(query), Some(key)) = (pick(0), pick(1)) else {
        return Err(unrecognised(format!(
            "{ctx}: query and key enter the scores product in an unknown way"
        )));
    };
    let value_entry = entries
        .iter()
        .find(|e| e.1 != scores_op)
        .ok_or_else(|| unrecognised(format!("{ctx}: no value projection")))?;
    Ok(AttentionRoles {
        query,
        key,
        value: value_entry.0,
        scores_op,
        context_op: value_entry.1,
    })
}

/// Walks the graph of `model` and recognises a BERT encoder (see the module docs).
pub fn recognise(model: &TfliteModel) -> Result<BertGraph, TfliteError> {
    let g = Graph::new(model);
    let lookup = find_embedding(&g)?;
    let (word, mut x) = (lookup.table, lookup.rows);
    let h = model.tensors[word].shape[1];

    // Additions to the token embeddings, up to the LayerNorm.
    let (mut position, mut token_type) = (None, Vec::new());
    while g.users(x, op::MEAN).is_empty() {
        let add = g.one_user(x, op::ADD, "embeddings")?;
        let other = if add.input(0) == Some(x) {
            add.input(1)
        } else {
            add.input(0)
        };
        let other = other.ok_or_else(|| unrecognised(format!("{} has one input", add.label())))?;
        let shape_of = |t: usize| model.tensors[t].shape.clone();
        if let Some(c) = g.constant(other) {
            match shape_of(c).as_slice() {
                [d] | [1, d] if *d == h => token_type.push(c),
                // litert-torch folds the token-type row, broadcast over the fixed sequence
                // length, into a [1, n, h] constant beside the [1, n, h] position rows.
                [_, d] | [1, _, d] if *d == h && token_type.is_empty() && g.rows_identical(c, h) => token_type.push(c),
                [p, d] | [1, p, d] if *d == h && position.is_none() => position = Some(c),
                s => {
                    return Err(unrecognised(format!(
                        "embeddings: constant {} of shape {s:?} added to the token embeddings",
                        g.label(c)
                    )))
                }
            }
        } else {
            let slice = g.producer[other]
                .map(|i| g.op(i))
                .filter(|o| matches!(o.code, op::STRIDED_SLICE | op::SLICE));
            let table = slice.and_then(|o| o.input(0)).and_then(|t| g.constant(t));
            match table {
                Some(t)
                    if position.is_none() && model.tensors[t].shape.len() == 2 && model.tensors[t].shape[1] == h =>
                {
                    position = Some(t)
                }
                _ => {
                    return Err(unrecognised(format!(
                        "embeddings: {} adds {}, which is neither a constant nor a slice of a position table",
                        add.label(),
                        g.label(other)
                    )))
                }
            }
        }
        x = g.out(add)?;
    }
    let ln = g.layer_norm(x, "embeddings")?;
    let (eps, embeddings_norm) = (ln.eps, ln.norm);
    let mut stream = ln;
    let mut folded: Option<bool> = None;
    let mut layers = Vec::new();
    let mut heads = None;
    let mut gelu_tanh = None;
    loop {
        let i = layers.len();
        let ctx = format!("layer {i}");
        let on_normalized = g.linears_reading(stream.normalized)?;
        let on_output = g.linears_reading(stream.output)?;
        let (this_folded, qkv) = match (on_normalized.is_empty(), on_output.is_empty()) {
            (true, true) => break,
            (false, true) => (true, on_normalized),
            (true, false) => (false, on_output),
            (false, false) => {
                return Err(unrecognised(format!(
                    "{ctx}: linear layers read both the normalised values and the LayerNorm output"
                )))
            }
        };
        if *folded.get_or_insert(this_folded) != this_folded {
            return Err(unrecognised(format!(
                "{ctx}: LayerNorm weights are folded into some linear layers but not others"
            )));
        }
        let norm_out = |m: &LayerNormMatch| if this_folded { m.normalized } else { m.output };
        if qkv.len() != 3 {
            return Err(unrecognised(format!(
                "{ctx}: expected 3 linear layers (query, key, value) after the LayerNorm, found {}",
                qkv.len()
            )));
        }
        // Where each projection enters an attention product: (product operator, operand slot).
        let mut entries = Vec::new();
        for (o, mut lin) in qkv {
            let result = g.linear_result(o, &mut lin)?;
            let shaped = g.through_layout(result);
            if heads.is_none() {
                // The RESHAPE into heads: [..., heads, head_dim] with heads x head_dim = h.
                if let [.., a, b] = model.tensors[g.through_layout_first_reshape(result)].shape[..] {
                    if a * b == h && a > 1 {
                        heads = Some(a);
                    }
                }
            }
            let bmm = g
                .users(shaped, op::BATCH_MATMUL)
                .into_iter()
                .next()
                .ok_or_else(|| unrecognised(format!("{ctx}: {} does not reach a BATCH_MATMUL", o.label())))?;
            let slot = if bmm.input(0) == Some(shaped) { 0 } else { 1 };
            entries.push((lin, bmm.index, slot));
        }
        let AttentionRoles {
            query,
            key,
            value,
            scores_op,
            context_op,
        } = attention_roles(&entries, &ctx)?;
        // scores -> MUL / DIV by a constant -> SOFTMAX -> context product. litert-torch folds
        // the scale of an SDPA attention into the projections instead: no MUL / DIV, scale 1.
        let scores = g.out(g.op(scores_op))?;
        let scale_op = g.consumers[scores]
            .first()
            .map(|&i| g.op(i))
            .filter(|o| matches!(o.code, op::MUL | op::DIV));
        let (scale, mut scaled) = match scale_op {
            Some(scale_op) => {
                let c = scale_op.input(1).and_then(|t| g.scalar(t)).ok_or_else(|| {
                    unrecognised(format!(
                        "{ctx}: {} does not scale by a scalar constant",
                        scale_op.label()
                    ))
                })?;
                let scale = if scale_op.code == op::DIV { 1.0 / c } else { c };
                (scale, g.out(scale_op)?)
            }
            None => (1.0, scores),
        };
        // litert-torch adds the attention mask, all zeros without padding.
        if let [i] = g.consumers[scaled].as_slice() {
            let add = g.op(*i);
            if add.code == op::ADD {
                let mask = add.inputs.iter().flatten().copied().find(|&t| t != scaled);
                if !mask.is_some_and(|m| g.is_zero_mask(m)) {
                    return Err(unrecognised(format!(
                        "{ctx}: {} adds a mask to the attention scores that is not all zeros (octet runs unpadded sequences without a mask)",
                        add.label()
                    )));
                }
                scaled = g.out(add)?;
            }
        }
        let softmax = g.one_user(scaled, op::SOFTMAX, &ctx)?;
        if g.op(context_op).input(0) != Some(g.through_layout(g.out(softmax)?)) {
            return Err(unrecognised(format!(
                "{ctx}: the value product does not read the softmax"
            )));
        }
        let context = g.through_layout(g.out(g.op(context_op))?);
        let mut output = g.linears_reading(context)?;
        if output.len() != 1 {
            return Err(unrecognised(format!(
                "{ctx}: expected one output projection reading the attention context {}, found {}",
                g.label(context),
                output.len()
            )));
        }
        let (o_op, mut output_ref) = output.remove(0);
        let o_out = g.linear_result(o_op, &mut output_ref)?;
        let after_attention = g.add_of(o_out, stream.output, &ctx)?;
        let ln1 = g.layer_norm(after_attention, &format!("{ctx} attention"))?;
        let mut up = g.linears_reading(norm_out(&ln1))?;
        if up.len() != 1 {
            return Err(unrecognised(format!(
                "{ctx}: expected one FFN up projection after the attention LayerNorm, found {}",
                up.len()
            )));
        }
        let (up_op, mut up_ref) = up.remove(0);
        let up_out = g.linear_result(up_op, &mut up_ref)?;
        let gelu = g.one_user(up_out, op::GELU, &format!("{ctx} FFN activation"))?;
        let tanh = matches!(gelu.options, OpOptions::Gelu { approximate: true });
        if *gelu_tanh.get_or_insert(tanh) != tanh {
            return Err(unrecognised(format!("{ctx}: GELU form differs between layers")));
        }
        let mut down = g.linears_reading(g.out(gelu)?)?;
        if down.len() != 1 {
            return Err(unrecognised(format!(
                "{ctx}: expected one FFN down projection after GELU, found {}",
                down.len()
            )));
        }
        let (down_op, mut down_ref) = down.remove(0);
        let down_out = g.linear_result(down_op, &mut down_ref)?;
        let after_ffn = g.add_of(down_out, ln1.output, &ctx)?;
        let ln2 = g.layer_norm(after_ffn, &format!("{ctx} FFN"))?;
        for e in [ln1.eps, ln2.eps] {
            if (e - eps).abs() > eps.abs() * 1e-3 {
                return Err(unrecognised(format!(
                    "{ctx}: LayerNorm epsilon {e} differs from the embeddings' {eps}"
                )));
            }
        }
        if (scale - 0.0).abs() < f32::MIN_POSITIVE {
            return Err(unrecognised(format!("{ctx}: attention scale is 0")));
        }
        layers.push((
            LayerRefs {
                query,
                key,
                value,
                output: output_ref,
                attention_norm: ln1.norm,
                up: up_ref,
                down: down_ref,
                ffn_norm: ln2.norm,
            },
            scale,
        ));
        stream = ln2;
    }
    if layers.is_empty() {
        return Err(unrecognised(
            "no FULLY_CONNECTED or BATCH_MATMUL layer reads the embeddings' LayerNorm",
        ));
    }
    let heads = heads.ok_or_else(|| {
        unrecognised("no RESHAPE into attention heads ([..., heads, head_dim]) after the query projection")
    })?;
    let head_dim = h / heads;
    let want = 1.0 / (head_dim as f32).sqrt();
    // Either every layer scales its scores by 1/sqrt(head_dim), or none does (the scale is in
    // the projections' weights, and the query weights are rescaled when planned).
    let unscaled = layers.iter().all(|(_, s)| *s == 1.0);
    if let Some((_, s)) = layers.iter().find(|(_, s)| !unscaled && (s - want).abs() > want * 1e-4) {
        return Err(unrecognised(format!(
            "attention scale {s}; octet's BERT uses 1/sqrt(head_dim {head_dim}) = {want}, or no scale in every layer"
        )));
    }
    let query_scale = if unscaled { 1.0 / want } else { 1.0 };

    // Pooling after the last LayerNorm.
    let last = stream.output;
    let outputs = &model.outputs;
    let pooling = if outputs.contains(&last) {
        return Err(unrecognised(format!(
            "the model outputs the per-token hidden states {}: octet needs the pooling in the model (MEAN over tokens, optionally L2_NORMALIZATION)",
            g.label(last)
        )));
    } else {
        let mean = g.one_user(last, op::MEAN, "pooling")?;
        let pooled = g.out(mean)?;
        let normalize = match g.consumers[pooled].as_slice() {
            _ if g.lowered_l2_norm(pooled).is_some_and(|out| outputs.contains(&out)) => true,
            [i] if g.op(*i).code == op::L2_NORMALIZATION => {
                let out = g.out(g.op(*i))?;
                if !outputs.contains(&out) {
                    return Err(unrecognised(format!(
                        "pooling: the L2 normalised {} is not a model output",
                        g.label(out)
                    )));
                }
                true
            }
            _ if outputs.contains(&pooled) => false,
            _ => {
                return Err(unrecognised(format!(
                    "pooling: the mean {} is neither an output nor L2 normalised (L2_NORMALIZATION, or litert-torch's x / max(POW(SUM(x * x), 0.5), eps))",
                    g.label(pooled)
                )))
            }
        };
        PoolingFound { mean: true, normalize }
    };
    Ok(BertGraph {
        word,
        position,
        token_type,
        embeddings_norm,
        layers: layers.into_iter().map(|(l, _)| l).collect(),
        heads,
        eps,
        gelu_tanh: gelu_tanh.unwrap_or(false),
        folded_norms: folded.unwrap_or(false),
        query_scale,
        asymmetric_inputs: model.operators.iter().any(|o| {
            matches!(
                o.options,
                OpOptions::FullyConnected {
                    asymmetric_quantize_inputs: true,
                    ..
                }
            )
        }),
        pooling,
    })
}

impl Graph<'_> {
    /// litert-torch's lowering of `x / max(||x||, eps)`: MUL(x, x) -> SUM -> POW 0.5 (or
    /// SQRT) -> [MAXIMUM eps] -> DIV(x, .). Returns the DIV's output.
    fn lowered_l2_norm(&self, x: usize) -> Option<usize> {
        let square = self
            .users(x, op::MUL)
            .into_iter()
            .find(|o| o.input(0) == Some(x) && o.input(1) == Some(x))?;
        let sum = self.users(*square.outputs.first()?, op::SUM).into_iter().next()?;
        let s = *sum.outputs.first()?;
        let root = self.consumers[s].iter().map(|&i| self.op(i)).find(|o| {
            o.code == op::SQRT || (o.code == op::POW && o.input(1).and_then(|e| self.scalar(e)) == Some(0.5))
        })?;
        let mut norm = *root.outputs.first()?;
        if let Some(max) = self.users(norm, op::MAXIMUM).into_iter().next() {
            let floor = max.inputs.iter().flatten().copied().find(|&t| t != norm)?;
            // A floor against division by zero, not a change of the result.
            if !self.scalar(floor).is_some_and(|f| (0.0..1e-6).contains(&f)) {
                return None;
            }
            norm = *max.outputs.first()?;
        }
        let div = self
            .users(norm, op::DIV)
            .into_iter()
            .find(|o| o.input(0) == Some(x) && o.input(1) == Some(norm))?;
        div.outputs.first().copied()
    }

    /// The output of the first RESHAPE on the single-consumer layout chain from `t` (or `t`).
    pub(super) fn through_layout_first_reshape(&self, mut t: usize) -> usize {
        while let [i] = self.consumers[t].as_slice() {
            let o = self.op(*i);
            if !matches!(o.code, op::RESHAPE | op::TRANSPOSE | op::SQUEEZE | op::CAST) {
                break;
            }
            let Some(&next) = o.outputs.first() else {
                break;
            };
            if o.code == op::RESHAPE {
                return next;
            }
            t = next;
        }
        t
    }
}

/// A user's mapping: tensor (name or decimal index) -> engine name, plus the hyperparameters
/// the graph would have given.
///
/// ```json
/// {"tensors": {"Const_100": "embeddings.word", "7": "layers.0.attention.query.weight", ...},
///  "config": {"num_attention_heads": 12, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
///             "folded_norms": true, "normalize": true}}
/// ```
///
/// Engine names: `embeddings.{word,position,token_type}`, `embeddings.norm.{weight,bias}`,
/// `layers.N.attention.{query,key,value,output}.{weight,bias}`, `layers.N.attention.norm.{weight,bias}`,
/// `layers.N.ffn.{up,down}.{weight,bias}`, `layers.N.ffn.norm.{weight,bias}`. Linear weights are
/// [out, in], as FULLY_CONNECTED stores them. Pooling is the mean over tokens.
pub fn from_mapping(model: &TfliteModel, map: &serde_json::Value) -> Result<BertGraph, TfliteError> {
    let bad = |m: String| TfliteError::Invalid(format!("mapping file: {m}"));
    let tensors = map
        .get("tensors")
        .and_then(|v| v.as_object())
        .ok_or_else(|| bad("needs an object \"tensors\": {tensor name or index: engine name}".into()))?;
    let mut by_engine: BTreeMap<String, usize> = BTreeMap::new();
    for (key, value) in tensors {
        let engine = value
            .as_str()
            .ok_or_else(|| bad(format!("the value for '{key}' is not a string")))?;
        let index = match key.parse::<usize>() {
            Ok(i) if i < model.tensors.len() => i,
            Ok(i) => {
                return Err(bad(format!(
                    "tensor index {i} out of range ({} tensors)",
                    model.tensors.len()
                )))
            }
            Err(_) => model
                .tensors
                .iter()
                .position(|t| t.name == *key)
                .ok_or_else(|| bad(format!("no tensor named '{key}'")))?,
        };
        if !model.tensors[index].is_constant() {
            return Err(bad(format!(
                "tensor {} is not a constant",
                model.tensors[index].label()
            )));
        }
        if by_engine.insert(engine.to_string(), index).is_some() {
            return Err(bad(format!("engine name '{engine}' is given twice")));
        }
    }
    let config = map.get("config").cloned().unwrap_or_default();
    let get = |name: &str| {
        by_engine
            .get(name)
            .copied()
            .ok_or_else(|| bad(format!("no tensor for '{name}'")))
    };
    let norm = |p: &str| -> Result<NormRef, TfliteError> {
        Ok(NormRef {
            weight: get(&format!("{p}.weight"))?,
            bias: get(&format!("{p}.bias"))?,
        })
    };
    let linear = |p: &str| -> Result<LinearRef, TfliteError> {
        Ok(LinearRef {
            weight: get(&format!("{p}.weight"))?,
            bias: by_engine.get(&format!("{p}.bias")).copied(),
            transposed: false,
        })
    };
    let mut layers = Vec::new();
    while by_engine.contains_key(&format!("layers.{}.attention.query.weight", layers.len())) {
        let p = format!("layers.{}", layers.len());
        layers.push(LayerRefs {
            query: linear(&format!("{p}.attention.query"))?,
            key: linear(&format!("{p}.attention.key"))?,
            value: linear(&format!("{p}.attention.value"))?,
            output: linear(&format!("{p}.attention.output"))?,
            attention_norm: norm(&format!("{p}.attention.norm"))?,
            up: linear(&format!("{p}.ffn.up"))?,
            down: linear(&format!("{p}.ffn.down"))?,
            ffn_norm: norm(&format!("{p}.ffn.norm"))?,
        });
    }
    if layers.is_empty() {
        return Err(bad("no 'layers.0.attention.query.weight'".into()));
    }
    let heads = config
        .get("num_attention_heads")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| bad("config.num_attention_heads is required".into()))? as usize;
    let act = config.get("hidden_act").and_then(|v| v.as_str()).unwrap_or("gelu");
    Ok(BertGraph {
        word: get("embeddings.word")?,
        position: by_engine.get("embeddings.position").copied(),
        token_type: by_engine.get("embeddings.token_type").copied().into_iter().collect(),
        embeddings_norm: norm("embeddings.norm")?,
        layers,
        heads,
        eps: config.get("layer_norm_eps").and_then(|v| v.as_f64()).unwrap_or(1e-12) as f32,
        gelu_tanh: matches!(act, "gelu_new" | "gelu_pytorch_tanh"),
        folded_norms: config.get("folded_norms").and_then(|v| v.as_bool()).unwrap_or(false),
        query_scale: 1.0,
        asymmetric_inputs: config
            .get("asymmetric_activations")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        pooling: PoolingFound {
            mean: true,
            normalize: config.get("normalize").and_then(|v| v.as_bool()).unwrap_or(true),
        },
    })
}
