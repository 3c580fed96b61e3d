//! The 7-bit table layout (`u7`): eight unsigned 7-bit values in seven bytes.
//!
//! A `[rows, dim]` table of values `q` in `0..=127` is stored row by row, each row in
//! [`u7_row_bytes`]`(dim) = 7 * ceil(dim / 8)` bytes, so row `r` starts at byte
//! `r * u7_row_bytes(dim)` and every row starts on a whole group. Inside a row the values go in
//! groups of eight: group `g` (values `8g .. 8g + 7`) is the seven bytes at `7g`, read as the
//! little-endian 56-bit integer
//!
//! ```text
//! w = b[7g] | b[7g + 1] << 8 | ... | b[7g + 6] << 48
//! value 8g + j = (w >> 7j) & 127          for j in 0..8
//!
//! bit of w:  55 .. 49 | 48 .. 42 | 41 .. 35 | 34 .. 28 | 27 .. 21 | 20 .. 14 | 13 ... 7 | 6 .... 0
//!            8g + 7   | 8g + 6   | 8g + 5   | 8g + 4   | 8g + 3   | 8g + 2   | 8g + 1   | 8g
//! ```
//!
//! Equivalently, value `j` of a row is bits `7j .. 7j + 7` of the row read as a little-endian
//! bit stream (bit `b` of the stream is bit `b % 8` of byte `b / 8`).
//!
//! When `dim % 8 != 0`, the last group of each row is completed with zero values: writers
//! ([`pack_u7`]) write zero bits there and readers ignore them.
//!
//! Why 7 bits: one bit less than int8 costs little (the step of a row's range is twice
//! int8's, half of u6's) and saves an eighth of the table: a 30522 x 384 token table is
//! 10.3 MB instead of 11.7 MB (int8) or 8.8 MB ([`super::u6`]). A group of 8 values is one
//! 64-bit lane less a byte, which AVX-512 VBMI's `vpmultishiftqb` unpacks in one instruction.

use crate::KernelError;

/// The largest stored value.
pub const U7_MAX: u8 = 127;

/// Values per packed group.
pub const U7_GROUP_VALUES: usize = 8;

/// Bytes per packed group.
pub const U7_GROUP_BYTES: usize = 7;

/// Bytes one row of `dim` values takes: `7 * ceil(dim / 8)`. Cannot overflow (it is at most
/// about `0.875 * dim + 7`).
pub const fn u7_row_bytes(dim: usize) -> usize {
    dim.div_ceil(U7_GROUP_VALUES) * U7_GROUP_BYTES
}

/// Bytes a `[rows, dim]` table takes, or `None` if that overflows `usize`.
pub fn u7_table_bytes(rows: usize, dim: usize) -> Option<usize> {
    rows.checked_mul(u7_row_bytes(dim))
}

/// Packs a row-major `[rows, dim]` array of values in `0..=127` into the layout above.
/// Errors: `values.len() != rows * dim` (or that product overflowing), or a value over 127.
pub fn pack_u7(values: &[u8], rows: usize, dim: usize) -> Result<Vec<u8>, KernelError> {
    let numel = rows
        .checked_mul(dim)
        .ok_or_else(|| KernelError::Invalid(format!("u7 table of {rows} x {dim} overflows usize")))?;
    if values.len() != numel {
        return Err(KernelError::Invalid(format!(
            "u7 table of {rows} x {dim} needs {numel} values, got {}",
            values.len()
        )));
    }
    if let Some(v) = values.iter().find(|&&v| v > U7_MAX) {
        return Err(KernelError::Invalid(format!("u7 value {v} is over {U7_MAX}")));
    }
    let row_bytes = u7_row_bytes(dim);
    // Can overflow even when rows * dim does not: a dim under 8 still takes 7 bytes per row.
    let len = u7_table_bytes(rows, dim)
        .ok_or_else(|| KernelError::Invalid(format!("u7 table of {rows} x {dim} overflows usize")))?;
    let mut out = vec![0u8; len];
    if dim == 0 {
        return Ok(out);
    }
    for (src, dst) in values.chunks_exact(dim).zip(out.chunks_exact_mut(row_bytes)) {
        for (group, bytes) in src.chunks(U7_GROUP_VALUES).zip(dst.chunks_exact_mut(U7_GROUP_BYTES)) {
            let w = group
                .iter()
                .enumerate()
                .fold(0u64, |w, (j, &v)| w | u64::from(v) << (7 * j));
            bytes.copy_from_slice(&w.to_le_bytes()[..U7_GROUP_BYTES]);
        }
    }
    Ok(out)
}

/// Unpacks a `[rows, dim]` table stored as above into one value per byte (the inverse of
/// [`pack_u7`]; padding bits are ignored). Errors if `packed` is not exactly
/// `rows * u7_row_bytes(dim)` bytes.
pub fn unpack_u7(packed: &[u8], rows: usize, dim: usize) -> Result<Vec<u8>, KernelError> {
    let len = u7_table_bytes(rows, dim)
        .ok_or_else(|| KernelError::Invalid(format!("u7 table of {rows} x {dim} overflows usize")))?;
    if packed.len() != len {
        return Err(KernelError::Invalid(format!(
            "u7 table of {rows} x {dim} takes {len} bytes, got {}",
            packed.len()
        )));
    }
    // Fits, since a slice of `len` bytes exists and rows * dim <= 8/7 * len; checked anyway.
    let numel = rows
        .checked_mul(dim)
        .ok_or_else(|| KernelError::Invalid(format!("u7 table of {rows} x {dim} overflows usize")))?;
    let mut out = vec![0u8; numel];
    if dim == 0 {
        return Ok(out);
    }
    for (src, dst) in packed.chunks_exact(u7_row_bytes(dim)).zip(out.chunks_exact_mut(dim)) {
        unpack_row(src, dst);
    }
    Ok(out)
}

/// Unpacks one row: `dst.len()` values from `src` (`u7_row_bytes(dst.len())` bytes).
#[inline]
pub(super) fn unpack_row(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len(), u7_row_bytes(dst.len()));
    for (bytes, group) in src.chunks_exact(U7_GROUP_BYTES).zip(dst.chunks_mut(U7_GROUP_VALUES)) {
        let w = group_word(bytes);
        for (j, v) in group.iter_mut().enumerate() {
            *v = ((w >> (7 * j)) & 127) as u8;
        }
    }
}

/// The little-endian 56-bit word of one group (`bytes.len() == 7`), in the low 56 bits of a
/// u64 whose top byte is zero: the form the SIMD paths broadcast into a register.
#[inline(always)]
pub(super) fn group_word(bytes: &[u8]) -> u64 {
    debug_assert_eq!(bytes.len(), U7_GROUP_BYTES);
    u64::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_layout_is_as_documented() {
        // Values 1..=8: w = 1 | 2 << 7 | 3 << 14 | ... | 8 << 49 = 0x10_1c30_5080_c101.
        let packed = pack_u7(&[1, 2, 3, 4, 5, 6, 7, 8], 1, 8).unwrap();
        assert_eq!(packed, [0x01, 0xc1, 0x80, 0x50, 0x30, 0x1c, 0x10]);
        // All ones is 56 one bits.
        assert_eq!(pack_u7(&[127; 8], 1, 8).unwrap(), [0xff; 7]);
        // A ragged row: two values, the rest of the group zero.
        assert_eq!(pack_u7(&[127, 127], 1, 2).unwrap(), [0xff, 0x3f, 0, 0, 0, 0, 0]);
        // Rows start on a group: 2 rows of 9 values take 2 x 14 bytes.
        let values: Vec<u8> = (0..18).map(|i| i * 7).collect();
        let packed = pack_u7(&values, 2, 9).unwrap();
        assert_eq!(packed.len(), 28);
        assert_eq!(unpack_u7(&packed, 2, 9).unwrap(), values);
        assert_eq!(u7_row_bytes(384), 336);
        assert_eq!(u7_row_bytes(0), 0);
        assert_eq!(u7_row_bytes(1), 7);
        assert_eq!(u7_row_bytes(9), 14);
    }

    #[test]
    fn every_value_round_trips() {
        let values: Vec<u8> = (0..=127).chain((0..=127).rev()).chain([7]).collect();
        for dim in [1, 3, 7, 8, 9, 15, 16, 17, 43, 129] {
            let rows = values.len() / dim;
            let v = &values[..rows * dim];
            assert_eq!(
                unpack_u7(&pack_u7(v, rows, dim).unwrap(), rows, dim).unwrap(),
                v,
                "dim {dim}"
            );
        }
        assert!(pack_u7(&[], 0, 7).unwrap().is_empty());
        assert!(pack_u7(&[], 7, 0).unwrap().is_empty());
        assert_eq!(unpack_u7(&[], 7, 0).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(pack_u7(&[128], 1, 1).is_err());
        assert!(pack_u7(&[255], 1, 1).is_err());
        assert!(pack_u7(&[1, 2, 3], 1, 4).is_err());
        assert!(pack_u7(&[], usize::MAX, 2).is_err());
        assert!(pack_u7(&[], usize::MAX, 0).is_ok());
        assert!(unpack_u7(&[0; 13], 1, 9).is_err());
        assert!(unpack_u7(&[0; 15], 1, 9).is_err());
        assert!(unpack_u7(&[], usize::MAX, 2).is_err());
    }
}
