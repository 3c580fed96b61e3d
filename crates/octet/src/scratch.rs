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
    /// `N` buffers of the given lengths, disjoint, reusing earlier allocations. Their contents
    /// are whatever an earlier pass left there (zeros where a buffer grew): every encoder
    /// writes each buffer before reading it, so clearing them would be a memset over all of a
    /// pass's activations for nothing (1.2% of a MiniLM 32 x 128 profile with 2,048-token
    /// passes; within noise with today's smaller passes).
    pub fn take<const N: usize>(&mut self, lens: [usize; N]) -> [&mut [f32]; N] {
        if self.buffers.len() < N {
            self.buffers.resize_with(N, Vec::new);
        }
        let mut buffers = self.buffers.iter_mut();
        lens.map(|len| match buffers.next() {
            Some(buffer) => {
                if buffer.len() < len {
                    buffer.resize(len, 0.0);
                }
                &mut buffer[..len]
            }
            // Not reached: there are at least N buffers.
            None => &mut [],
        })
    }
}
