//! The operator graph with producer and consumer links, and the pattern steps every encoder
//! walk shares ([`crate::bert`], [`crate::t5`]): following layout operators, finding constants
//! behind DEQUANTIZE, the linear layers reading a tensor, the token-table look-up and the roles
//! of the three attention projections.

use crate::model::{op, OpOptions, Operator, TfliteModel};
use crate::{TensorType, TfliteError};

/// A linear layer: weight [n, k] (FULLY_CONNECTED's layout) and optional bias [n].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearRef {
    /// The constant weight tensor (possibly int8, possibly behind a DEQUANTIZE).
    pub weight: usize,
    pub bias: Option<usize>,
    /// The weight is stored [k, n] (a BATCH_MATMUL with a constant right operand).
    pub transposed: bool,
}

pub(crate) fn unrecognised(msg: impl Into<String>) -> TfliteError {
    TfliteError::Unrecognised(msg.into())
}

/// The text of an error without its kind's prefix, to nest in another message.
pub(crate) fn message(e: &TfliteError) -> String {
    match e {
        TfliteError::Unrecognised(m) | TfliteError::Invalid(m) | TfliteError::Io(m) => m.clone(),
    }
}

/// The operator graph with producer and consumer links.
pub(crate) struct Graph<'m> {
    pub(crate) model: &'m TfliteModel,
    pub(crate) producer: Vec<Option<usize>>,
    pub(crate) consumers: Vec<Vec<usize>>,
}

impl<'m> Graph<'m> {
    pub(crate) fn new(model: &'m TfliteModel) -> Graph<'m> {
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

    pub(crate) fn op(&self, i: usize) -> &'m Operator {
        &self.model.operators[i]
    }

    pub(crate) fn label(&self, t: usize) -> String {
        self.model.tensors[t].label()
    }

    /// Consumers of tensor `t` with builtin `code`.
    pub(crate) fn users(&self, t: usize, code: i32) -> Vec<&'m Operator> {
        self.consumers[t]
            .iter()
            .map(|&i| self.op(i))
            .filter(|o| o.code == code)
            .collect()
    }

    /// The single consumer of `t` with `code`, or an error describing what was there.
    pub(crate) fn one_user(&self, t: usize, code: i32, context: &str) -> Result<&'m Operator, TfliteError> {
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
    pub(crate) fn out(&self, o: &Operator) -> Result<usize, TfliteError> {
        o.outputs
            .first()
            .copied()
            .ok_or_else(|| unrecognised(format!("{} has no output", o.label())))
    }

    /// The constant behind `t`: `t` itself, or the input of the DEQUANTIZE that made it.
    pub(crate) fn constant(&self, t: usize) -> Option<usize> {
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
    pub(crate) fn scalar(&self, t: usize) -> Option<f32> {
        let c = self.constant(t)?;
        let values = self.model.f32_values(&self.model.tensors[c]).ok()?;
        (values.len() == 1).then(|| values[0])
    }

    /// Follows `t` through single-consumer RESHAPE / TRANSPOSE / SQUEEZE / CAST operators.
    pub(crate) fn through_layout(&self, mut t: usize) -> usize {
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

    /// The output of the first RESHAPE on the single-consumer layout chain from `t` (or `t`).
    pub(crate) fn through_layout_first_reshape(&self, mut t: usize) -> usize {
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

    /// `t`, or the tensor a chain of RESHAPEs made it from.
    pub(crate) fn before_reshapes(&self, mut t: usize) -> usize {
        while let Some(o) = self.producer[t].map(|i| self.op(i)) {
            match (o.code, o.input(0)) {
                (op::RESHAPE, Some(src)) => t = src,
                _ => break,
            }
        }
        t
    }

    /// A constant BOOL tensor's values (schema TensorType 6, one byte each).
    pub(crate) fn bool_values(&self, t: usize) -> Option<Vec<bool>> {
        let tensor = &self.model.tensors[t];
        if tensor.dtype != TensorType::Other(6) {
            return None;
        }
        let bytes = self.model.data(tensor)?;
        (bytes.len() == tensor.numel()).then(|| bytes.iter().map(|&b| b != 0).collect())
    }

    /// The linear layers reading `t`: FULLY_CONNECTED with a constant weight, or BATCH_MATMUL
    /// with a constant right operand.
    pub(crate) fn linears_reading(&self, t: usize) -> Result<Vec<(&'m Operator, LinearRef)>, TfliteError> {
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
    pub(crate) fn linear_result(&self, o: &Operator, lin: &mut LinearRef) -> Result<usize, TfliteError> {
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

    /// The ADD of `a` and `b` (either order).
    pub(crate) fn add_of(&self, a: usize, b: usize, context: &str) -> Result<usize, TfliteError> {
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
pub(crate) struct EmbeddingLookup {
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
/// followed by a DEQUANTIZE of the rows (shared with [`crate::t5`]).
pub(crate) fn find_embedding(g: &Graph) -> Result<EmbeddingLookup, TfliteError> {
    let m = g.model;
    // Among several int32 inputs (ids, mask, segment ids), the token ids are the one whose
    // look-up reads the table with the most rows (the segment ids read a [2, h] one).
    let mut best: Option<(usize, EmbeddingLookup)> = None;
    for &input in &m.inputs {
        if !matches!(m.tensors[input].dtype, TensorType::I32 | TensorType::I64) {
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
                if let [rows, _] = m.tensors[table].shape[..] {
                    if best.as_ref().is_some_and(|(r, _)| *r >= rows) {
                        continue;
                    }
                    let mut out = g.out(o)?;
                    if let [i] = g.consumers[out].as_slice() {
                        if g.op(*i).code == op::DEQUANTIZE {
                            out = g.out(g.op(*i))?;
                        }
                    }
                    // litert-torch looks up [n, h] rows and RESHAPEs them to [1, n, h].
                    let found = EmbeddingLookup {
                        input,
                        ids,
                        table,
                        rows: g.through_layout(out),
                    };
                    best = Some((rows, found));
                }
            }
        }
    }
    if let Some((_, found)) = best {
        return Ok(found);
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
pub(crate) struct AttentionRoles {
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
/// key in slot 1); the third is the value. Shared with [`crate::t5`].
pub(crate) fn attention_roles(entries: &[(LinearRef, usize, usize)], ctx: &str) -> Result<AttentionRoles, TfliteError> {
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
