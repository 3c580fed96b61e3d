//! Packing of quantized activation rows into the row tiles a kernel reads.
//!
//! A kernel with a register tile of `mr` rows reads activation *tiles*: tile t covers rows
//! `t * mr .. t * mr + mr` (rows past `m` are packed from zeros) and stores, for each chunk of
//! `chunk` consecutive k, the chunk of each of its `mr` rows in turn:
//!
//! ```text
//! element offset of qa[t * mr + i][k] in tile t = (k / chunk) * (mr * chunk) + i * chunk + k % chunk
//! ```
//!
//! so the activations one k step of the micro-kernel needs are contiguous. `chunk` is 4 for
//! `vpdpbusd` / `sdot` (one broadcast dword per row) and 8 for `smmla` (a 2x8 row pair per
//! register). The VNNI kernel also flips the sign bit (`q ^ 0x80 = q + 128` as u8); the AVX2
//! kernel widens to little-endian i16 for `vpmaddwd`. Rows are packed one at a time, right
//! after they are quantized, while they are in L1. The AMX kernel packs 32-row tiles of
//! 64-byte k-blocks, tile rows rather than dwords, with its own `pack_row` ([`super::amx`]).

/// Packs row `i` (`k_pad` values) of a tile of `MR` rows, in chunks of `CHUNK`, each byte
/// xor `FLIP`.
pub(crate) fn pack_row_bytes<const MR: usize, const CHUNK: usize, const FLIP: u8>(
    row: &[i8],
    i: usize,
    tile: &mut [u8],
) {
    assert!(i < MR && row.len().is_multiple_of(CHUNK) && tile.len() == MR * row.len());
    if CHUNK == 4 {
        let flip = u32::from_ne_bytes([FLIP; 4]);
        let src = row.as_ptr() as *const u32;
        let dst = tile.as_mut_ptr() as *mut u32;
        for c in 0..row.len() / 4 {
            // SAFETY: chunk c of the row is bytes 4c..4c+4 < row.len(); its destination,
            // dword c * MR + i, ends at 4 (c * MR + i + 1) <= 4 MR (c + 1) <= tile.len()
            // (checked above). Unaligned accesses.
            unsafe { dst.add(c * MR + i).write_unaligned(src.add(c).read_unaligned() ^ flip) };
        }
    } else {
        for (c, src) in row.chunks_exact(CHUNK).enumerate() {
            let dst = &mut tile[(c * MR + i) * CHUNK..][..CHUNK];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = s as u8 ^ FLIP;
            }
        }
    }
}

/// Packs row `i` of a tile of `MR` rows in chunks of 4, each value widened to i16 (LE).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn pack_row_i16<const MR: usize>(row: &[i8], i: usize, tile: &mut [u8]) {
    const CHUNK: usize = 4;
    debug_assert!(i < MR && row.len().is_multiple_of(CHUNK) && tile.len() == 2 * MR * row.len());
    for (c, src) in row.chunks_exact(CHUNK).enumerate() {
        let dst = &mut tile[2 * (c * MR + i) * CHUNK..][..2 * CHUNK];
        for (d, &s) in dst.chunks_exact_mut(2).zip(src) {
            d.copy_from_slice(&(s as i16).to_le_bytes());
        }
    }
}
