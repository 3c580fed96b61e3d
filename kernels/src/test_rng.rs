//! The small deterministic generator every test of this workspace draws its random inputs from
//! (kernel tests, the tokenizer's fast-path test). Not for anything but tests: a 64-bit LCG
//! (Knuth's MMIX constants), read from its high bits, which are the well-mixed ones.

#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct TestRng(pub u64);

impl TestRng {
    /// The next state.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }

    /// 32 high bits of the next state.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform over all of i8 (the top byte).
    pub fn i8(&mut self) -> i8 {
        (self.next_u64() >> 56) as i8
    }

    /// Uniform in [-1, 1), on a grid of 2^-23.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u32 << 23) as f32 - 1.0
    }

    /// Below `n` (n > 0); the bias of the modulo is negligible for the small n tests use.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u32() as u64 % n as u64) as usize
    }

    /// `n` values uniform in [-scale, scale).
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.unit() * scale).collect()
    }

    /// `n` values uniform in [offset - scale, offset + scale).
    pub fn vec_around(&mut self, n: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..n).map(|_| self.unit() * scale + offset).collect()
    }
}
