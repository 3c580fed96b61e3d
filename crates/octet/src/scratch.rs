//! [`Scratch`]: the activation buffers of one forward pass, kept and reused across passes.
//!
//! An encoder asks for its buffers by length at the start of `forward`; the vectors grow to the
//! largest pass seen and are never shrunk, so after the first pass a forward allocates nothing
//! and touches no fresh pages. The embedder bounds every pass by a token budget
//! ([`crate::EmbedOptions::max_batch_tokens`]), which bounds these buffers, and keeps one
//! `Scratch` per concurrent caller.

/// Reusable f32 buffers.
#[derive(Default)]
pub struct Scratch {
    buffers: Vec<Vec<f32>>,
}

impl Scratch {
    /// `N` zeroed buffers of the given lengths, disjoint, reusing earlier allocations.
    pub fn take<const N: usize>(&mut self, lens: [usize; N]) -> [&mut [f32]; N] {
        if self.buffers.len() < N {
            self.buffers.resize_with(N, Vec::new);
        }
        let mut buffers = self.buffers.iter_mut();
        lens.map(|len| match buffers.next() {
            Some(buffer) => {
                buffer.clear();
                buffer.resize(len, 0.0);
                buffer.as_mut_slice()
            }
            // Not reached: there are at least N buffers.
            None => &mut [],
        })
    }
}
