//! The 6-bit table layout (`u6`): four unsigned 6-bit values in three bytes.
//!
//! A `[rows, dim]` table of values `q` in `0..=63` is stored row by row, each row in
//! [`u6_row_bytes`]`(dim) = 3 * ceil(dim / 4)` bytes, so row `r` starts at byte
//! `r * u6_row_bytes(dim)` and every row starts on a whole group. Inside a row the values go in
//! groups of four: group `g` (values `4g .. 4g + 3`) is the three bytes at `3g`, read as the
//! little-endian 24-bit integer
//!
//! ```text
//! w = b[3g] | b[3g + 1] << 8 | b[3g + 2] << 16
//! value 4g + j = (w >> 6j) & 63          for j in 0..4
//!
//! bit of w:  23 ........ 18 | 17 ........ 12 | 11 ......... 6 | 5 .......... 0
//!            value 4g + 3   | value 4g + 2   | value 4g + 1   | value 4g
//! ```
//!
//! Equivalently, value `j` of a row is bits `6j .. 6j + 6` of the row read as a little-endian
//! bit stream (bit `b` of the stream is bit `b % 8` of byte `b / 8`).
//!
//! When `dim % 4 != 0`, the last group of each row is completed with zero values: writers
//! ([`pack_u6`]) write zero bits there and readers ignore them.
//!
//! Why 6 bits: an embedding lookup is not a matrix multiply, so nothing forces the table's
//! width to match the int8 dot products; the gather only has to unpack. A 30522 x 384 token
//! table drops from 11.7 MB (int8) to 8.8 MB, and 6 bits per value with a per-row scale and
//! zero point keeps MiniLM's embeddings within the int8 recipe's accuracy bounds (measured in
//! `tools/src/convert/recipe.rs`).

use crate::KernelError;

/// The largest stored value.
pub const U6_MAX: u8 = 63;

/// Values per packed group.
pub const U6_GROUP_VALUES: usize = 4;

/// Bytes per packed group.
pub const U6_GROUP_BYTES: usize = 3;

/// Bytes one row of `dim` values takes: `3 * ceil(dim / 4)`. Cannot overflow (it is at most
/// about `0.75 * dim + 3`).
pub const fn u6_row_bytes(dim: usize) -> usize {
    dim.div_ceil(U6_GROUP_VALUES) * U6_GROUP_BYTES
}

/// Bytes a `[rows, dim]` table takes, or `None` if that overflows `usize`.
pub fn u6_table_bytes(rows: usize, dim: usize) -> Option<usize> {
    rows.checked_mul(u6_row_bytes(dim))
}

/// Packs a row-major `[rows, dim]` array of values in `0..=63` into the layout above.
/// Errors: `values.len() != rows * dim` (or that product overflowing), or a value over 63.
pub fn pack_u6(values: &[u8], rows: usize, dim: usize) -> Result<Vec<u8>, KernelError> {
    let numel = rows
        .checked_mul(dim)
        .ok_or_else(|| KernelError::Invalid(format!("u6 table of {rows} x {dim} overflows usize")))?;
    if values.len() != numel {
        return Err(KernelError::Invalid(format!(
            "u6 table of {rows} x {dim} needs {numel} values, got {}",
            values.len()
        )));
    }
    if let Some(v) = values.iter().find(|&&v| v > U6_MAX) {
        return Err(KernelError::Invalid(format!("u6 value {v} is over {U6_MAX}")));
    }
    let row_bytes = u6_row_bytes(dim);
    // Can overflow even when rows * dim does not: a dim under 4 still takes 3 bytes per row.
    let len = u6_table_bytes(rows, dim)
        .ok_or_else(|| KernelError::Invalid(format!("u6 table of {rows} x {dim} overflows usize")))?;
    let mut out = vec![0u8; len];
    if dim == 0 {
        return Ok(out);
    }
    for (src, dst) in values.chunks_exact(dim).zip(out.chunks_exact_mut(row_bytes)) {
        for (group, bytes) in src.chunks(U6_GROUP_VALUES).zip(dst.chunks_exact_mut(U6_GROUP_BYTES)) {
            let w = group
                .iter()
                .enumerate()
                .fold(0u32, |w, (j, &v)| w | u32::from(v) << (6 * j));
            bytes.copy_from_slice(&w.to_le_bytes()[..U6_GROUP_BYTES]);
        }
    }
    Ok(out)
}

/// Unpacks a `[rows, dim]` table stored as above into one value per byte (the inverse of
/// [`pack_u6`]; padding bits are ignored). Errors if `packed` is not exactly
/// `rows * u6_row_bytes(dim)` bytes.
pub fn unpack_u6(packed: &[u8], rows: usize, dim: usize) -> Result<Vec<u8>, KernelError> {
    let len = u6_table_bytes(rows, dim)
        .ok_or_else(|| KernelError::Invalid(format!("u6 table of {rows} x {dim} overflows usize")))?;
    if packed.len() != len {
        return Err(KernelError::Invalid(format!(
            "u6 table of {rows} x {dim} takes {len} bytes, got {}",
            packed.len()
        )));
    }
    // Fits, since a slice of `len` bytes exists and rows * dim <= 4/3 * len; checked anyway.
    let numel = rows
        .checked_mul(dim)
        .ok_or_else(|| KernelError::Invalid(format!("u6 table of {rows} x {dim} overflows usize")))?;
    let mut out = vec![0u8; numel];
    if dim == 0 {
        return Ok(out);
    }
    for (src, dst) in packed.chunks_exact(u6_row_bytes(dim)).zip(out.chunks_exact_mut(dim)) {
        unpack_row(src, dst);
    }
    Ok(out)
}

/// Unpacks one row: `dst.len()` values from `src` (`u6_row_bytes(dst.len())` bytes).
#[inline]
pub(super) fn unpack_row(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len(), u6_row_bytes(dst.len()));
    for (bytes, group) in src.chunks_exact(U6_GROUP_BYTES).zip(dst.chunks_mut(U6_GROUP_VALUES)) {
        let w = group_word(bytes);
        for (j, v) in group.iter_mut().enumerate() {
            *v = ((w >> (6 * j)) & 63) as u8;
        }
    }
}

/// The little-endian 24-bit word of one group (`bytes.len() == 3`).
#[inline(always)]
pub(super) fn group_word(bytes: &[u8]) -> u32 {
    debug_assert_eq!(bytes.len(), U6_GROUP_BYTES);
    u32::from(bytes[0]) | u32::from(bytes[1]) << 8 | u32::from(bytes[2]) << 16
}

/// The 6 bytes of two groups (8 values) as the low 48 bits of a little-endian u64, the form
/// the SIMD paths broadcast into a register (`bytes.len() == 6`).
#[inline(always)]
#[allow(dead_code)] // used by the SIMD paths of the host architecture only
pub(super) fn two_groups(bytes: &[u8]) -> u64 {
    debug_assert_eq!(bytes.len(), 2 * U6_GROUP_BYTES);
    u64::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_layout_is_as_documented() {
        // Values 1, 2, 3, 63: w = 1 | 2 << 6 | 3 << 12 | 63 << 18 = 0xFC_30_81.
        let packed = pack_u6(&[1, 2, 3, 63], 1, 4).unwrap();
        assert_eq!(packed, [0x81, 0x30, 0xFC]);
        // A ragged row: two values, the rest of the group zero.
        assert_eq!(pack_u6(&[63, 63], 1, 2).unwrap(), [0xFF, 0x0F, 0x00]);
        // Rows start on a group: 2 rows of 5 values take 2 x 6 bytes.
        let values: Vec<u8> = (0..10).map(|i| i * 6).collect();
        let packed = pack_u6(&values, 2, 5).unwrap();
        assert_eq!(packed.len(), 12);
        assert_eq!(unpack_u6(&packed, 2, 5).unwrap(), values);
        assert_eq!(u6_row_bytes(384), 288);
        assert_eq!(u6_row_bytes(0), 0);
        assert_eq!(u6_row_bytes(1), 3);
    }

    #[test]
    fn every_value_round_trips() {
        let values: Vec<u8> = (0..=63).chain((0..=63).rev()).chain([7]).collect();
        for dim in [1, 3, 4, 5, 43, 129] {
            let rows = values.len() / dim;
            let v = &values[..rows * dim];
            assert_eq!(
                unpack_u6(&pack_u6(v, rows, dim).unwrap(), rows, dim).unwrap(),
                v,
                "dim {dim}"
            );
        }
        assert!(pack_u6(&[], 0, 7).unwrap().is_empty());
        assert!(pack_u6(&[], 7, 0).unwrap().is_empty());
        assert_eq!(unpack_u6(&[], 7, 0).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(pack_u6(&[64], 1, 1).is_err());
        assert!(pack_u6(&[1, 2, 3], 1, 4).is_err());
        assert!(pack_u6(&[], usize::MAX, 2).is_err());
        assert!(pack_u6(&[], usize::MAX, 0).is_ok());
        assert!(unpack_u6(&[0; 5], 1, 8).is_err());
        assert!(unpack_u6(&[], usize::MAX, 2).is_err());
    }
}
