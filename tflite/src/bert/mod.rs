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
//! | attention mask | none, or `(1 - mask) x -10000` on a masked export | ADD of SELECT_V2(condition, 0, min) to the scores: accepted when the condition is constant and the mask all zeros, or when it is the key mask of an `attention_mask` input ([`padding_select`]) |
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

mod mapping;
mod masked;
mod norm;
mod padding_select;
mod pieces;
mod pooling;
mod walk;

pub use crate::graph::LinearRef;
pub use mapping::from_mapping;
pub use walk::recognise;

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

/// How the model pools the last layer's token vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooled {
    /// The mean over the tokens (MEAN, or the masked mean of a fixed-length export).
    Mean,
    /// The first token's vector (a slice of row 0).
    Cls,
    /// None in the graph: it outputs the token vectors and the caller pools them. octet
    /// mean-pools them (sentence-transformers' default), unnormalised.
    Caller,
}

/// What the model does after the last layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolingFound {
    pub mode: Pooled,
    /// L2 normalisation after pooling.
    pub normalize: bool,
}

/// What each model input is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputRoles {
    /// The token ids (the input whose look-up reads the [vocab, h] table).
    pub ids: usize,
    /// The attention mask (1 = token, 0 = padding), turned into an additive score bias and
    /// the weights of a masked mean; octet runs unpadded, where it is all ones.
    pub mask: Option<usize>,
    /// The segment ids, looked up in the token-type table; octet embeds one text: segment 0.
    pub segments: Option<usize>,
}

/// A recognised BERT encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct BertGraph {
    pub inputs: InputRoles,
    pub word: usize,
    /// The position table [positions, h] (sliced to the sequence length in the graph), if any.
    pub position: Option<usize>,
    /// Constant rows [h] or [1, h] added to every token's embedding, or a token-type table
    /// looked up by the segment ids (its first row: token type 0).
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
