//! The tile instructions the AMX kernel uses, behind one trait with two implementations:
//! [`Hardware`] (`core::arch::asm!`: stable Rust has no AMX intrinsics) and, for tests,
//! [`Emulated`], a software model of the same instructions written from their definitions in
//! the Intel SDM, so that the kernel's addressing, padding and epilogue are checked bit for bit
//! on machines without AMX.
//!
//! Register roles (palette 1 has eight tiles `tmm0..tmm7`):
//!
//! ```text
//! tmm0 tmm1   C[0][0] C[0][1]    i32 accumulators, 16 rows x 16 columns each
//! tmm2 tmm3   C[1][0] C[1][1]    (rows 0-15 / 16-31 x panels 0 / 1)
//! tmm4 tmm5   A[0] A[1]          u8 activations, 16 rows x KA bytes (KA = 64, or k_pad below 64)
//! tmm6 tmm7   B[0] B[1]          i8 weights, KA / 4 rows (k-quads) x 64 bytes (16 columns x 4)
//! ```
//!
//! `tdpbusd C, A, B` adds, for each row m and column n of C, the products of the unsigned
//! bytes `A[m][4q..4q+4]` with the signed bytes `B[q][4n..4n+4]` over every k-quad q: row q of
//! a B tile is one 64-byte k-quad of a packed panel ([`super::super::pack`]), so 16 k-quads of a
//! panel, 1024 contiguous bytes, load as one B tile with a row stride of 64.

/// Bytes of one full tile (16 rows x 64 bytes).
pub(super) const TILE_BYTES: usize = 1024;
/// Row stride of every tile load and store: 64 bytes.
pub(super) const ROW_BYTES: usize = 64;

/// The 64-byte operand of `ldtilecfg` (palette 1).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    /// The configuration for A tiles of `ka` bytes per row (`ka` a multiple of 4, at most 64):
    /// C tiles 16 x 64 bytes, A tiles 16 x `ka`, B tiles `ka / 4` x 64.
    pub(super) fn new(ka: usize) -> TileConfig {
        assert!(ka > 0 && ka <= ROW_BYTES && ka.is_multiple_of(4));
        let mut c = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for t in 0..4 {
            c.colsb[t] = ROW_BYTES as u16;
            c.rows[t] = 16;
        }
        for t in 4..6 {
            c.colsb[t] = ka as u16;
            c.rows[t] = 16;
        }
        for t in 6..8 {
            c.colsb[t] = ROW_BYTES as u16;
            c.rows[t] = (ka / 4) as u8;
        }
        c
    }
}

/// The tile operations of the kernel, for `MH` row halves (1 or 2 A tiles) and `NP` panels
/// (1 or 2 B tiles).
///
/// # Safety
/// Implementations execute (or model) tile instructions: callers must hold a configuration
/// loaded by [`TileUnit::load_config`] on this thread, with AMX available (see
/// [`super::availability`]) for [`Hardware`].
pub(super) unsafe trait TileUnit {
    /// `ldtilecfg`: loads `cfg` (and zeroes every tile).
    ///
    /// # Safety
    /// AMX must be available to this process.
    unsafe fn load_config(cfg: &TileConfig);

    /// Starts the accumulators in use: every row of C[h][j] is the 64 bytes (16 i32) at
    /// `rows + j * 64` (a `tileloadd` with row stride 0).
    ///
    /// # Safety
    /// A configuration is loaded on this thread; `rows` has `NP * 64` readable bytes.
    unsafe fn start_acc<const MH: usize, const NP: usize>(rows: *const u8);

    /// Loads A[h] from `a + h * TILE_BYTES` and B[j] from `b + j * b_stride` (row stride 64)
    /// and accumulates the `MH x NP` products.
    ///
    /// # Safety
    /// A configuration is loaded; every row each tile reads lies in readable memory.
    unsafe fn step<const MH: usize, const NP: usize>(a: *const u8, b: *const u8, b_stride: usize);

    /// Stores C[h][j] to `out + (2 h + j) * TILE_BYTES` (row stride 64).
    ///
    /// # Safety
    /// A configuration is loaded; `out` has `4 * TILE_BYTES` writable bytes.
    unsafe fn store_acc<const MH: usize, const NP: usize>(out: *mut u8);

    /// `tilerelease`: returns the tile state to its initial state.
    ///
    /// # Safety
    /// AMX must be available to this process.
    unsafe fn release();
}

/// The real instructions.
pub(super) struct Hardware;

// SAFETY: each method executes exactly the instructions documented on the trait, on the
// register roles of the module docs.
unsafe impl TileUnit for Hardware {
    #[inline]
    unsafe fn load_config(cfg: &TileConfig) {
        // SAFETY: AMX is available (caller); `cfg` is a valid 64-byte palette-1 configuration.
        unsafe { core::arch::asm!("ldtilecfg [{0}]", in(reg) cfg as *const TileConfig, options(nostack, readonly)) };
    }

    #[inline]
    unsafe fn start_acc<const MH: usize, const NP: usize>(rows: *const u8) {
        let r1 = rows.wrapping_add(ROW_BYTES);
        // SAFETY: a configuration is loaded; `rows` has NP rows of 64 readable bytes (caller),
        // and a stride of 0 reads only them.
        unsafe {
            core::arch::asm!("tileloadd tmm0, [{p} + {z}*1]", p = in(reg) rows, z = in(reg) 0usize, options(nostack, readonly));
            if NP == 2 {
                core::arch::asm!("tileloadd tmm1, [{p} + {z}*1]", p = in(reg) r1, z = in(reg) 0usize, options(nostack, readonly));
            }
            if MH == 2 {
                core::arch::asm!("tileloadd tmm2, [{p} + {z}*1]", p = in(reg) rows, z = in(reg) 0usize, options(nostack, readonly));
                if NP == 2 {
                    core::arch::asm!("tileloadd tmm3, [{p} + {z}*1]", p = in(reg) r1, z = in(reg) 0usize, options(nostack, readonly));
                }
            }
        }
    }

    #[inline]
    unsafe fn step<const MH: usize, const NP: usize>(a: *const u8, b: *const u8, b_stride: usize) {
        let a1 = a.wrapping_add(TILE_BYTES);
        let b1 = b.wrapping_add(b_stride);
        // SAFETY: a configuration is loaded and the tiles read lie in readable memory (caller).
        unsafe {
            match (MH, NP) {
                (2, 2) => core::arch::asm!(
                    "tileloadd tmm4, [{a0} + {s}*1]",
                    "tileloadd tmm6, [{b0} + {s}*1]",
                    "tileloadd tmm5, [{a1} + {s}*1]",
                    "tileloadd tmm7, [{b1} + {s}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tdpbusd tmm3, tmm5, tmm7",
                    a0 = in(reg) a, a1 = in(reg) a1, b0 = in(reg) b, b1 = in(reg) b1, s = in(reg) ROW_BYTES,
                    options(nostack),
                ),
                (2, 1) => core::arch::asm!(
                    "tileloadd tmm4, [{a0} + {s}*1]",
                    "tileloadd tmm6, [{b0} + {s}*1]",
                    "tileloadd tmm5, [{a1} + {s}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm2, tmm5, tmm6",
                    a0 = in(reg) a, a1 = in(reg) a1, b0 = in(reg) b, s = in(reg) ROW_BYTES,
                    options(nostack),
                ),
                (1, 2) => core::arch::asm!(
                    "tileloadd tmm4, [{a0} + {s}*1]",
                    "tileloadd tmm6, [{b0} + {s}*1]",
                    "tileloadd tmm7, [{b1} + {s}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    a0 = in(reg) a, b0 = in(reg) b, b1 = in(reg) b1, s = in(reg) ROW_BYTES,
                    options(nostack),
                ),
                _ => core::arch::asm!(
                    "tileloadd tmm4, [{a0} + {s}*1]",
                    "tileloadd tmm6, [{b0} + {s}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    a0 = in(reg) a, b0 = in(reg) b, s = in(reg) ROW_BYTES,
                    options(nostack),
                ),
            }
        }
    }

    #[inline]
    unsafe fn store_acc<const MH: usize, const NP: usize>(out: *mut u8) {
        let c = |t: usize| out.wrapping_add(t * TILE_BYTES);
        // SAFETY: a configuration is loaded; `out` has 4 tiles of writable bytes (caller).
        unsafe {
            core::arch::asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) c(0), s = in(reg) ROW_BYTES, options(nostack));
            if NP == 2 {
                core::arch::asm!("tilestored [{p} + {s}*1], tmm1", p = in(reg) c(1), s = in(reg) ROW_BYTES, options(nostack));
            }
            if MH == 2 {
                core::arch::asm!("tilestored [{p} + {s}*1], tmm2", p = in(reg) c(2), s = in(reg) ROW_BYTES, options(nostack));
                if NP == 2 {
                    core::arch::asm!("tilestored [{p} + {s}*1], tmm3", p = in(reg) c(3), s = in(reg) ROW_BYTES, options(nostack));
                }
            }
        }
    }

    #[inline]
    unsafe fn release() {
        // SAFETY: AMX is available (caller); register-only.
        unsafe { core::arch::asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// A software model of the tile registers and instructions (one per thread), following the
/// SDM's pseudo-code, including its fault conditions as panics: an unconfigured tile
/// instruction, or operand shapes `tdpbusd` rejects (`#UD`).
#[cfg(test)]
pub(super) struct Emulated;

#[cfg(test)]
mod emulation {
    use super::{TileConfig, ROW_BYTES, TILE_BYTES};
    use std::cell::RefCell;

    pub(super) struct State {
        pub config: Option<TileConfig>,
        pub tiles: [[u8; TILE_BYTES]; 8],
    }

    thread_local! {
        pub(super) static STATE: RefCell<State> = const { RefCell::new(State { config: None, tiles: [[0; TILE_BYTES]; 8] }) };
    }

    fn shape(s: &State, t: usize) -> (usize, usize) {
        let c = s.config.as_ref().expect("tile instruction without ldtilecfg (#UD)");
        let (rows, colsb) = (c.rows[t] as usize, c.colsb[t] as usize);
        assert!(rows > 0 && colsb > 0, "tmm{t} is not configured (#UD)");
        (rows, colsb)
    }

    pub(super) fn load_config(cfg: &TileConfig) {
        STATE.with_borrow_mut(|s| {
            assert_eq!(cfg.palette, 1);
            s.config = Some(*cfg);
            s.tiles = [[0; TILE_BYTES]; 8];
        });
    }

    /// # Safety
    /// `rows` rows of `colsb` bytes at `base + r * stride` are readable.
    pub(super) unsafe fn load(t: usize, base: *const u8, stride: usize) {
        STATE.with_borrow_mut(|s| {
            let (rows, colsb) = shape(s, t);
            let tile = &mut s.tiles[t];
            *tile = [0; TILE_BYTES];
            for r in 0..rows {
                // SAFETY: the caller guarantees the row is readable.
                let src = unsafe { std::slice::from_raw_parts(base.add(r * stride), colsb) };
                tile[r * ROW_BYTES..r * ROW_BYTES + colsb].copy_from_slice(src);
            }
        });
    }

    /// # Safety
    /// `rows` rows of `colsb` bytes at `base + r * ROW_BYTES` are writable.
    pub(super) unsafe fn store(t: usize, base: *mut u8) {
        STATE.with_borrow(|s| {
            let (rows, colsb) = shape(s, t);
            for r in 0..rows {
                // SAFETY: the caller guarantees the row is writable.
                let dst = unsafe { std::slice::from_raw_parts_mut(base.add(r * ROW_BYTES), colsb) };
                dst.copy_from_slice(&s.tiles[t][r * ROW_BYTES..r * ROW_BYTES + colsb]);
            }
        });
    }

    /// `tdpbusd tmm(c), tmm(a), tmm(b)`.
    pub(super) fn dpbusd(c: usize, a: usize, b: usize) {
        STATE.with_borrow_mut(|s| {
            let ((c_rows, c_colsb), (a_rows, a_colsb), (b_rows, b_colsb)) = (shape(s, c), shape(s, a), shape(s, b));
            assert!(
                a_colsb / 4 == b_rows
                    && c_rows == a_rows
                    && c_colsb == b_colsb
                    && a_colsb.is_multiple_of(4)
                    && c_colsb.is_multiple_of(4),
                "tdpbusd operand shapes (#UD)"
            );
            let (ta, tb) = (s.tiles[a], s.tiles[b]);
            let tc = &mut s.tiles[c];
            for m in 0..c_rows {
                for n in 0..c_colsb / 4 {
                    let at = m * ROW_BYTES + 4 * n;
                    let mut acc = i32::from_le_bytes(tc[at..at + 4].try_into().unwrap());
                    for q in 0..a_colsb / 4 {
                        for i in 0..4 {
                            let x = ta[m * ROW_BYTES + 4 * q + i] as i32;
                            let w = tb[q * ROW_BYTES + 4 * n + i] as i8 as i32;
                            acc = acc.wrapping_add(x * w);
                        }
                    }
                    tc[at..at + 4].copy_from_slice(&acc.to_le_bytes());
                }
            }
        });
    }

    pub(super) fn release() {
        STATE.with_borrow_mut(|s| {
            s.config = None;
            s.tiles = [[0; TILE_BYTES]; 8];
        });
    }
}

// SAFETY: the model touches only the memory the trait's contract makes readable / writable.
#[cfg(test)]
unsafe impl TileUnit for Emulated {
    unsafe fn load_config(cfg: &TileConfig) {
        emulation::load_config(cfg);
    }

    unsafe fn start_acc<const MH: usize, const NP: usize>(rows: *const u8) {
        for h in 0..MH {
            for j in 0..NP {
                // SAFETY: the caller guarantees NP readable rows of 64 bytes at `rows`.
                unsafe { emulation::load(2 * h + j, rows.wrapping_add(j * ROW_BYTES), 0) };
            }
        }
    }

    unsafe fn step<const MH: usize, const NP: usize>(a: *const u8, b: *const u8, b_stride: usize) {
        for h in 0..MH {
            // SAFETY: the caller guarantees the tile rows are readable.
            unsafe { emulation::load(4 + h, a.wrapping_add(h * TILE_BYTES), ROW_BYTES) };
        }
        for j in 0..NP {
            // SAFETY: as above.
            unsafe { emulation::load(6 + j, b.wrapping_add(j * b_stride), ROW_BYTES) };
        }
        for h in 0..MH {
            for j in 0..NP {
                emulation::dpbusd(2 * h + j, 4 + h, 6 + j);
            }
        }
    }

    unsafe fn store_acc<const MH: usize, const NP: usize>(out: *mut u8) {
        for h in 0..MH {
            for j in 0..NP {
                // SAFETY: the caller guarantees 4 writable tiles at `out`.
                unsafe { emulation::store(2 * h + j, out.wrapping_add((2 * h + j) * TILE_BYTES)) };
            }
        }
    }

    unsafe fn release() {
        emulation::release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_64_bytes_palette_1() {
        assert_eq!(std::mem::size_of::<TileConfig>(), 64);
        let c = TileConfig::new(24);
        // SAFETY: TileConfig is 64 bytes of plain integers with no padding.
        let bytes: [u8; 64] = unsafe { std::mem::transmute(c) };
        assert_eq!(bytes[0], 1);
        assert_eq!(u16::from_le_bytes([bytes[16], bytes[17]]), 64); // colsb of tmm0
        assert_eq!(u16::from_le_bytes([bytes[16 + 8], bytes[16 + 9]]), 24); // colsb of tmm4
        assert_eq!(bytes[48 + 6], 6); // rows of tmm6: 24 / 4 k-quads
        assert!(bytes[48 + 8..].iter().all(|&b| b == 0));
    }

    /// The model against a direct sum, for a tile shape with a short k.
    #[test]
    fn emulated_tdpbusd_is_the_unsigned_by_signed_dot_product() {
        let a: Vec<u8> = (0..TILE_BYTES).map(|i| (i * 37 % 256) as u8).collect();
        let b: Vec<u8> = (0..TILE_BYTES).map(|i| (i * 91 % 256) as u8).collect();
        let mut c = vec![0u8; 4 * TILE_BYTES];
        let ka = 12;
        // SAFETY: emulated tiles; every buffer holds whole tiles.
        unsafe {
            Emulated::load_config(&TileConfig::new(ka));
            Emulated::start_acc::<1, 1>([0u8; 64].as_ptr());
            Emulated::step::<1, 1>(a.as_ptr(), b.as_ptr(), 0);
            Emulated::step::<1, 1>(a.as_ptr(), b.as_ptr(), 0);
            Emulated::store_acc::<1, 1>(c.as_mut_ptr());
            Emulated::release();
        }
        for m in 0..16 {
            for n in 0..16 {
                let expect: i32 = (0..ka)
                    .map(|k| a[m * 64 + k] as i32 * b[(k / 4) * 64 + 4 * n + k % 4] as i8 as i32)
                    .sum::<i32>()
                    * 2;
                let got = i32::from_le_bytes(c[m * 64 + 4 * n..][..4].try_into().unwrap());
                assert_eq!(got, expect, "m={m} n={n}");
            }
        }
    }
}
