//! A growable byte buffer that starts on a 64-byte boundary, for packed activation tiles.
//!
//! A `Vec<u8>` from the system allocator starts on a 16-byte boundary (large ones 16 bytes past
//! a page), so the 64-byte rows of an AMX tile would each span two cache lines and every
//! `tileloadd` would touch twice the lines it needs. Here the bytes live in a `Vec` of
//! 64-byte-aligned lines, so offset 0 is line-aligned, and so is every tile of a kernel whose
//! tile size is a multiple of 64 bytes.

use std::ops::{Deref, DerefMut};

/// One cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
struct Line([u8; 64]);

/// `len` bytes starting on a 64-byte boundary.
#[derive(Default)]
pub(super) struct AlignedBytes {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBytes {
    /// Makes the buffer `len` bytes long; bytes past the old length are 0, the rest keep
    /// their values.
    pub(super) fn resize_zeroed(&mut self, len: usize) {
        let lines = len.div_ceil(64);
        if lines > self.lines.len() {
            self.lines.resize(lines, Line([0; 64]));
        }
        if len > self.len {
            let old = self.len;
            self.len = len;
            self[old..].fill(0);
        } else {
            self.len = len;
        }
    }
}

impl Deref for AlignedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }
}

impl DerefMut for AlignedBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.lines)[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::AlignedBytes;

    #[test]
    fn starts_on_a_line_and_zeroes_what_it_grows() {
        let mut b = AlignedBytes::default();
        b.resize_zeroed(100);
        assert_eq!(b.len(), 100);
        assert_eq!(b.as_ptr() as usize % 64, 0);
        b.fill(7);
        b.resize_zeroed(40);
        b.resize_zeroed(200);
        assert!(b[..40].iter().all(|&x| x == 7));
        assert!(b[40..].iter().all(|&x| x == 0));
        b.resize_zeroed(10);
        assert!(b.iter().all(|&x| x == 7));
    }
}
