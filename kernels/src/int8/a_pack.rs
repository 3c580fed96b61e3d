//! Packing of quantized activation rows into the row tiles a kernel reads.
//!
//! A kernel with a register tile of `mr` rows reads activation *tiles*: tile t covers rows
//! `t * mr .. t * mr + mr` (rows past `m` are zero) and stores, for each chunk of `chunk`
//! consecutive k, the chunk of each of its `mr` rows in turn:
//!
//! ```text
//! byte offset of qa[t * mr + i][k] in tile t = (k / chunk) * (mr * chunk) + i * chunk + k % chunk
//! ```
//!
//! so the activations one k step of the micro-kernel needs are contiguous. `chunk` is 4 for
//! `vpdpbusd` / `sdot` (one broadcast dword per row) and 8 for `smmla` (a 2x8 row pair per
//! register). The VNNI kernel also flips the sign bit (`q ^ 0x80 = q + 128` as u8); the AVX2
//! kernel widens to i16 for `vpmaddwd`.

use super::quantize::QuantizedRows;

/// Bytes of one packed tile of `mr` rows with `elem` bytes per value.
pub(crate) fn tile_bytes(qa: &QuantizedRows, mr: usize, elem: usize) -> usize {
    mr * qa.k_pad * elem
}

/// Packs every tile as int8 (xor `flip`), into `out` (resized).
pub(crate) fn pack_bytes(qa: &QuantizedRows, mr: usize, chunk: usize, flip: u8, out: &mut Vec<u8>) {
    debug_assert!(qa.k_pad % chunk == 0);
    let tiles = qa.m.div_ceil(mr);
    let tile = tile_bytes(qa, mr, 1);
    out.clear();
    out.resize(tiles * tile, flip);
    for r in 0..qa.m {
        let dst = &mut out[(r / mr) * tile..][..tile];
        let i = r % mr;
        for (c, src) in qa.row(r).chunks_exact(chunk).enumerate() {
            for (d, &s) in dst[c * mr * chunk + i * chunk..][..chunk].iter_mut().zip(src) {
                *d = (s as u8) ^ flip;
            }
        }
    }
}

/// Packs every tile with chunks of 4, each value widened to a little-endian i16.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn pack_i16(qa: &QuantizedRows, mr: usize, out: &mut Vec<u8>) {
    const CHUNK: usize = 4;
    let tiles = qa.m.div_ceil(mr);
    let tile = tile_bytes(qa, mr, 2);
    out.clear();
    out.resize(tiles * tile, 0);
    for r in 0..qa.m {
        let dst = &mut out[(r / mr) * tile..][..tile];
        let i = r % mr;
        for (c, src) in qa.row(r).chunks_exact(CHUNK).enumerate() {
            let at = 2 * (c * mr * CHUNK + i * CHUNK);
            for (j, &s) in src.iter().enumerate() {
                dst[at + 2 * j..at + 2 * j + 2].copy_from_slice(&(s as i16).to_le_bytes());
            }
        }
    }
}
