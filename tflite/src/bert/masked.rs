//! The pieces a masked, fixed-length BERT export adds (MediaPipe's text embedder, Model Maker,
//! TensorFlow's converter on a `(input_word_ids, input_mask, input_type_ids)` signature):
//!
//! ```text
//! mask  -> [RESHAPE] -> CAST -> SUB(1, .) -> MUL(., -10000) -> [RESHAPE] -> ADD to the scores
//! segment ids -> [RESHAPE] -> GATHER(token-type table [2 | type_vocab, h]) -> ADD to the embeddings
//!     (or EMBEDDING_LOOKUP(segment ids, table): TensorFlow's converter rewrites the one-hot form
//!     `one_hot(segment ids) @ table` of BERT's `use_one_hot_embeddings` into it)
//! last LayerNorm -> MUL(., mask) -> SUM over tokens -> DIV(., [MAXIMUM(SUM(mask), eps)]) = masked mean
//! ```
//!
//! octet runs each text unpadded, where every key is a real token: the score bias is then 0
//! everywhere, the masked mean is the plain mean, and segment id 0 selects the table's first
//! row. So each piece is recognised, checked to be exactly that, and dropped from the plan;
//! padded positions contribute `exp(-10000 + ...)`, which is 0 in f32, to the interpreter's
//! softmax, so its vector for a padded text is the unpadded one. litert-torch writes the score
//! bias of a Hugging Face model another way, recognised in [`super::padding_select`].

use crate::graph::Graph;
use crate::model::op;
use crate::TensorType;

/// The additive bias must be at least this negative for padded keys to vanish in f32's softmax
/// (`exp(-88)` is below f32's smallest normal number; BERT uses -10000, others f32::MIN).
pub(crate) const MASK_BIAS_AT_MOST: f32 = -1.0e3;

impl Graph<'_> {
    /// `t` back through RESHAPE / EXPAND_DIMS / SQUEEZE / CAST / BROADCAST_TO producers.
    pub(crate) fn before_layout(&self, mut t: usize) -> usize {
        while let Some(o) = self.producer[t].map(|i| self.op(i)) {
            match (o.code, o.input(0)) {
                (op::RESHAPE | op::EXPAND_DIMS | op::SQUEEZE | op::CAST | op::BROADCAST_TO, Some(src)) => t = src,
                _ => break,
            }
        }
        t
    }

    /// The model input `t` is made from by layout operators and casts, if it is an int32 /
    /// int64 input.
    pub(crate) fn int_input_behind(&self, t: usize) -> Option<usize> {
        let src = self.before_layout(t);
        (self.model.inputs.contains(&src) && matches!(self.model.tensors[src].dtype, TensorType::I32 | TensorType::I64))
            .then_some(src)
    }

    /// When `t` is BERT's extended attention mask, `(1 - cast(mask)) * c` with a large negative
    /// `c` (possibly reshaped), the mask input it reads.
    pub(crate) fn padding_mask_bias(&self, t: usize) -> Option<usize> {
        let mul = self.op(self.producer[self.before_layout(t)]?);
        if mul.code != op::MUL {
            return None;
        }
        let (a, b) = (mul.input(0)?, mul.input(1)?);
        let (scaled, c) = match (self.scalar(a), self.scalar(b)) {
            (None, Some(c)) => (a, c),
            (Some(c), None) => (b, c),
            _ => return None,
        };
        if c > MASK_BIAS_AT_MOST {
            return None;
        }
        let sub = self.op(self.producer[self.before_layout(scaled)]?);
        if sub.code != op::SUB || sub.input(0).and_then(|one| self.scalar(one)) != Some(1.0) {
            return None;
        }
        self.int_input_behind(sub.input(1)?)
    }

    /// When `t` is a row look-up (GATHER or EMBEDDING_LOOKUP) in a small constant [rows, h]
    /// table by ids read from a model input (the segment ids), the (table, input).
    pub(crate) fn segment_lookup(&self, t: usize, h: usize) -> Option<(usize, usize)> {
        let mut o = self.op(self.producer[t]?);
        if o.code == op::DEQUANTIZE {
            o = self.op(self.producer[o.input(0)?]?);
        }
        // GATHER(table, ids); EMBEDDING_LOOKUP(ids, table) is what TensorFlow's converter makes of
        // `one_hot(segment ids) @ table` (BERT with use_one_hot_embeddings).
        let (table, ids) = match o.code {
            op::GATHER => (o.input(0)?, o.input(1)?),
            op::EMBEDDING_LOOKUP => (o.input(1)?, o.input(0)?),
            _ => return None,
        };
        let table = self.constant(table)?;
        let input = self.int_input_behind(ids)?;
        match self.model.tensors[table].shape[..] {
            [rows, d] if d == h && rows >= 1 => Some((table, input)),
            _ => None,
        }
    }

    /// The masked mean over tokens of `x`: MUL(x, mask) -> SUM -> DIV by SUM(mask) (through
    /// an optional MAXIMUM with a small floor). Returns (the mean's tensor, the mask input).
    pub(crate) fn masked_mean(&self, x: usize) -> Option<(usize, usize)> {
        for mul in self.users(x, op::MUL) {
            let w = mul.inputs.iter().flatten().copied().find(|&t| t != x)?;
            let Some(mask) = self.int_input_behind(w) else {
                continue;
            };
            let sum = self.users(*mul.outputs.first()?, op::SUM).into_iter().next()?;
            let summed = *sum.outputs.first()?;
            let div = self
                .users(summed, op::DIV)
                .into_iter()
                .find(|d| d.input(0) == Some(summed))?;
            let mut count = div.input(1)?;
            if let Some(max) = self.producer[count]
                .map(|i| self.op(i))
                .filter(|o| o.code == op::MAXIMUM)
            {
                let (a, b) = (max.input(0)?, max.input(1)?);
                let (inner, floor) = if self.scalar(b).is_some() { (a, b) } else { (b, a) };
                if !self.scalar(floor).is_some_and(|f| (0.0..=1e-3).contains(&f)) {
                    return None;
                }
                count = inner;
            }
            let count_sum = self.op(self.producer[count]?);
            if count_sum.code != op::SUM || self.int_input_behind(count_sum.input(0)?) != Some(mask) {
                return None;
            }
            return Some((*div.outputs.first()?, mask));
        }
        None
    }
}
