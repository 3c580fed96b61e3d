//! [`PackedBatch`]: the token sequences of one forward pass, back to back with no padding, and
//! the [`Span`] of each. Attention runs per span and pooling reads each span's rows.

/// A sequence's place in a packed batch: rows `start .. start + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First row.
    pub start: usize,
    /// Number of rows (tokens).
    pub len: usize,
}

/// A batch of token sequences stored back to back, with no padding.
#[derive(Clone, Debug, Default)]
pub struct PackedBatch {
    /// The token ids of every sequence, concatenated.
    pub ids: Vec<u32>,
    /// Where each sequence sits in `ids`.
    pub spans: Vec<Span>,
}

impl PackedBatch {
    /// Packs the given sequences.
    pub fn new<'a>(seqs: impl IntoIterator<Item = &'a [u32]>) -> PackedBatch {
        let mut batch = PackedBatch::default();
        for seq in seqs {
            batch.spans.push(Span {
                start: batch.ids.len(),
                len: seq.len(),
            });
            batch.ids.extend_from_slice(seq);
        }
        batch
    }

    /// Total number of tokens.
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }

    /// The position of every token within its sequence, `0 .. len` per span.
    pub fn positions(&self) -> Vec<u32> {
        self.spans.iter().flat_map(|s| 0..s.len as u32).collect()
    }
}
