//! Gather tests: every kernel the host supports against the scalar reference and against the
//! definition written out independently here. All comparisons are bit-exact (`to_bits`), see
//! the parent module's docs for why that holds. "Every kernel" is [`kernels_under_test`]: the
//! one per supported level, plus the plain AVX-512 kernel where dispatch picks its VBMI form.

use super::*;
use crate::test_rng::TestRng;
use proptest::prelude::*;

/// Owned table contents from which [`Table`] views of every kind are borrowed.
struct Tables {
    rows: usize,
    dim: usize,
    q: Vec<i8>,
    /// u6 values (one per byte) and the same packed.
    q6: Vec<u8>,
    packed6: Vec<u8>,
    zero_points6: Vec<i32>,
    /// u7 values (one per byte) and the same packed.
    q7: Vec<u8>,
    packed7: Vec<u8>,
    zero_points7: Vec<i32>,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
    halves: Vec<f16>,
    floats: Vec<f32>,
}

impl Tables {
    fn new(rows: usize, dim: usize, seed: u64) -> Tables {
        let mut rng = TestRng(seed);
        let n = rows * dim;
        // The int8 extremes and the f16 specials (infinities, a subnormal, -0) are placed first.
        let mut q: Vec<i8> = (0..n).map(|_| rng.next_u32() as i8).collect();
        for (slot, v) in q.iter_mut().zip([-128i8, 127, 0, -1]) {
            *slot = v;
        }
        let mut q6: Vec<u8> = (0..n).map(|_| (rng.next_u32() >> 26) as u8).collect();
        for (slot, v) in q6.iter_mut().zip([63u8, 0, 1, 62]) {
            *slot = v;
        }
        let mut q7: Vec<u8> = (0..n).map(|_| (rng.next_u32() >> 25) as u8).collect();
        for (slot, v) in q7.iter_mut().zip([127u8, 0, 1, 126, 64, 63]) {
            *slot = v;
        }
        let mut halves: Vec<f16> = (0..n).map(|_| f16::from_f32(rng.unit() * 8.0)).collect();
        let specials = [
            f16::INFINITY,
            f16::NEG_INFINITY,
            f16::from_bits(1),
            f16::NEG_ZERO,
            f16::MAX,
        ];
        for (slot, v) in halves.iter_mut().zip(specials) {
            *slot = v;
        }
        Tables {
            rows,
            dim,
            packed6: pack_u6(&q6, rows, dim).unwrap(),
            q6,
            zero_points6: (0..rows).map(|r| [0, 63, 32, 5, -7, 70][r % 6]).collect(),
            packed7: pack_u7(&q7, rows, dim).unwrap(),
            q7,
            zero_points7: (0..rows).map(|r| [0, 127, 64, 5, -7, 130, i32::MIN][r % 7]).collect(),
            q,
            scales: (0..rows).map(|_| 0.001 + rng.unit().abs() * 0.05).collect(),
            zero_points: (0..rows).map(|r| [-128, 127, 0, 5, -7][r % 5]).collect(),
            halves,
            floats: (0..n).map(|_| rng.unit() * 3.0).collect(),
        }
    }

    /// Every table kind and quantization granularity.
    fn kinds(&self) -> Vec<(&'static str, Table<'_>)> {
        use PerRowOrTensor::{Row, Tensor};
        vec![
            (
                "i8 per-tensor",
                Table::I8 {
                    data: &self.q,
                    scale: Tensor(0.02),
                    zero_point: Tensor(3),
                },
            ),
            (
                "i8 per-row",
                Table::I8 {
                    data: &self.q,
                    scale: Row(&self.scales),
                    zero_point: Row(&self.zero_points),
                },
            ),
            (
                "i8 row scale, tensor zp",
                Table::I8 {
                    data: &self.q,
                    scale: Row(&self.scales),
                    zero_point: Tensor(-128),
                },
            ),
            (
                "u6 per-tensor",
                Table::U6 {
                    data: &self.packed6,
                    scale: Tensor(0.03),
                    zero_point: Tensor(31),
                },
            ),
            (
                "u6 per-row",
                Table::U6 {
                    data: &self.packed6,
                    scale: Row(&self.scales),
                    zero_point: Row(&self.zero_points6),
                },
            ),
            (
                "u7 per-tensor",
                Table::U7 {
                    data: &self.packed7,
                    scale: Tensor(0.015),
                    zero_point: Tensor(63),
                },
            ),
            (
                "u7 per-row",
                Table::U7 {
                    data: &self.packed7,
                    scale: Row(&self.scales),
                    zero_point: Row(&self.zero_points7),
                },
            ),
            (
                "u7 row scale, tensor zp",
                Table::U7 {
                    data: &self.packed7,
                    scale: Row(&self.scales),
                    zero_point: Tensor(64),
                },
            ),
            ("f16", Table::F16(&self.halves)),
            ("f32", Table::F32(&self.floats)),
        ]
    }
}

/// Value `j` of row `r` of a u6 table, read independently of `u6.rs`: the layout is the same
/// as a little-endian bit stream per row (value `j` at bits `6j .. 6j + 6` of the row), with
/// every row starting at a multiple of 3 bytes.
fn u6_value(data: &[u8], dim: usize, r: usize, j: usize) -> u8 {
    let row_start = r * (dim.div_ceil(4) * 3);
    (0..6).fold(0u8, |q, b| {
        let bit = 6 * j + b;
        q | ((data[row_start + bit / 8] >> (bit % 8)) & 1) << b
    })
}

/// Value `j` of row `r` of a u7 table, read independently of `u7.rs`: bits `7j .. 7j + 7` of
/// the row as a little-endian bit stream, every row starting at a multiple of 7 bytes.
fn u7_value(data: &[u8], dim: usize, r: usize, j: usize) -> u8 {
    let row_start = r * (dim.div_ceil(8) * 7);
    (0..7).fold(0u8, |q, b| {
        let bit = 7 * j + b;
        q | ((data[row_start + bit / 8] >> (bit % 8)) & 1) << b
    })
}

/// The kernels to test: the one [`for_isa`] hands out for every level the host supports, and
/// the plain AVX-512 kernel too where dispatch hands out its VBMI form instead, so both u7
/// paths run on a VBMI CPU.
fn kernels_under_test() -> Vec<&'static GatherKernel> {
    let mut kernels: Vec<&'static GatherKernel> = Isa::supported().into_iter().map(for_isa).collect();
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512.is_supported() {
        kernels.push(&AVX512);
    }
    kernels.sort_by_key(|k| k.name);
    kernels.dedup_by_key(|k| k.name);
    kernels
}

/// The definition from the module docs, written independently of `scalar.rs`.
fn definition(table: &Table, dim: usize, ids: &[u32], multiplier: f32, out: &mut [f32], accumulate: bool) {
    for (i, &id) in ids.iter().enumerate() {
        let r = id as usize;
        for j in 0..dim {
            let value = match table {
                Table::I8 {
                    data,
                    scale,
                    zero_point,
                } => {
                    let s = match scale {
                        PerRowOrTensor::Tensor(s) => *s,
                        PerRowOrTensor::Row(v) => v[r],
                    };
                    let zp = match zero_point {
                        PerRowOrTensor::Tensor(z) => *z,
                        PerRowOrTensor::Row(v) => v[r],
                    };
                    ((data[r * dim + j] as i32 - zp) as f32) * (s * multiplier)
                }
                Table::U6 {
                    data,
                    scale,
                    zero_point,
                } => {
                    let s = match scale {
                        PerRowOrTensor::Tensor(s) => *s,
                        PerRowOrTensor::Row(v) => v[r],
                    };
                    let zp = match zero_point {
                        PerRowOrTensor::Tensor(z) => *z,
                        PerRowOrTensor::Row(v) => v[r],
                    };
                    ((u6_value(data, dim, r, j) as i32 - zp) as f32) * (s * multiplier)
                }
                Table::U7 {
                    data,
                    scale,
                    zero_point,
                } => {
                    let s = match scale {
                        PerRowOrTensor::Tensor(s) => *s,
                        PerRowOrTensor::Row(v) => v[r],
                    };
                    let zp = match zero_point {
                        PerRowOrTensor::Tensor(z) => *z,
                        PerRowOrTensor::Row(v) => v[r],
                    };
                    ((u7_value(data, dim, r, j) as i32).wrapping_sub(zp) as f32) * (s * multiplier)
                }
                Table::F16(data) => f32::from(data[r * dim + j]) * multiplier,
                Table::F32(data) => data[r * dim + j] * multiplier,
            };
            let o = &mut out[i * dim + j];
            *o = if accumulate { *o + value } else { value };
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Runs every supported kernel on one shape and checks it, both forms, both multipliers.
fn check_shape(rows: usize, dim: usize, ids: &[u32], seed: u64) {
    let tables = Tables::new(rows, dim, seed);
    let mut rng = TestRng(seed ^ 0x5eed);
    let initial: Vec<f32> = (0..ids.len() * dim + 3).map(|_| rng.unit()).collect();
    for (what, table) in tables.kinds() {
        for multiplier in [1.0, (768f32).sqrt()] {
            for accumulate in [false, true] {
                let mut expected = initial.clone();
                definition(&table, dim, ids, multiplier, &mut expected, accumulate);
                for kernel in kernels_under_test() {
                    let mut out = initial.clone();
                    let f = if accumulate { gather_add } else { gather };
                    f(kernel, &table, tables.rows, tables.dim, ids, multiplier, &mut out).unwrap();
                    assert_eq!(
                        bits(&out),
                        bits(&expected),
                        "{} {what} rows={rows} dim={dim} multiplier={multiplier} accumulate={accumulate}",
                        kernel.name
                    );
                }
            }
        }
    }
}

#[test]
fn every_kernel_matches_definition_on_model_dims() {
    let rows = 9;
    // Ids include the first and last row, and repeats.
    let ids = [0u32, 8, 3, 3, 0, 7, 1, 8];
    for dim in [1, 3, 4, 12, 15, 17, 20, 31, 33, 384, 512, 768] {
        check_shape(rows, dim, &ids, dim as u64);
    }
}

/// Every dim from 1 to 40 covers every tail of the 8-, 16- and 64-value steps and of the 4-
/// and 8-value groups; 384 and 768 are MiniLM's and EmbeddingGemma's rows (VBMI: 6 and 12
/// full steps).
#[test]
fn every_kernel_matches_definition_on_ragged_dims() {
    let rows = 5;
    let ids = [4u32, 0, 2, 2, 1, 4, 3];
    for dim in (1..=40).chain([63, 64, 65, 384, 768]) {
        check_shape(rows, dim, &ids, 1000 + dim as u64);
    }
}

#[test]
fn empty_ids_and_zero_dim_are_no_ops() {
    let tables = Tables::new(3, 4, 1);
    for kernel in kernels_under_test() {
        for (_, table) in tables.kinds() {
            let mut out = [7.0f32; 4];
            gather(kernel, &table, 3, 4, &[], 1.0, &mut out).unwrap();
            gather(kernel, &table, 3, 0, &[2, 1], 1.0, &mut out[..0]).unwrap();
            assert_eq!(out, [7.0; 4]);
        }
    }
}

#[test]
fn bad_arguments_are_errors_and_write_nothing() {
    let (rows, dim) = (5, 6);
    let tables = Tables::new(rows, dim, 2);
    for k in kernels_under_test() {
        for (what, table) in tables.kinds() {
            let mut out = vec![9.0f32; 3 * dim];
            // An out-of-range id after valid ones: nothing is written.
            let err = gather(k, &table, rows, dim, &[0, 1, rows as u32], 1.0, &mut out).unwrap_err();
            assert_eq!(err, KernelError::IdOutOfRange { id: rows as u32, rows }, "{what}");
            assert!(out.iter().all(|&x| x == 9.0), "{what}: wrote before failing");
            let err = gather_add(k, &table, rows, dim, &[u32::MAX], 1.0, &mut out).unwrap_err();
            assert_eq!(err, KernelError::IdOutOfRange { id: u32::MAX, rows });
            // Output too short.
            let err = gather(k, &table, rows, dim, &[0, 1, 2, 3], 1.0, &mut out).unwrap_err();
            assert_eq!(
                err,
                KernelError::Length {
                    what: "gather output",
                    expected: 4 * dim,
                    got: 3 * dim
                }
            );
            // Table shorter than rows x dim.
            assert!(matches!(
                gather(k, &table, rows + 1, dim, &[0], 1.0, &mut out),
                Err(KernelError::Length { .. })
            ));
            // rows x dim overflowing.
            assert!(matches!(
                gather(k, &table, usize::MAX, 2, &[0], 1.0, &mut out),
                Err(KernelError::Invalid(_))
            ));
        }
        // Per-row parameters shorter than rows.
        use PerRowOrTensor::{Row, Tensor};
        let short_scale = Table::I8 {
            data: &tables.q,
            scale: Row(&tables.scales[..rows - 1]),
            zero_point: Tensor(0),
        };
        let short_zp = Table::I8 {
            data: &tables.q,
            scale: Tensor(1.0),
            zero_point: Row(&tables.zero_points[..2]),
        };
        let short_scale6 = Table::U6 {
            data: &tables.packed6,
            scale: Row(&tables.scales[..rows - 1]),
            zero_point: Tensor(0),
        };
        let short_zp6 = Table::U6 {
            data: &tables.packed6,
            scale: Tensor(1.0),
            zero_point: Row(&tables.zero_points6[..2]),
        };
        let short_scale7 = Table::U7 {
            data: &tables.packed7,
            scale: Row(&tables.scales[..rows - 1]),
            zero_point: Tensor(0),
        };
        let short_zp7 = Table::U7 {
            data: &tables.packed7,
            scale: Tensor(1.0),
            zero_point: Row(&tables.zero_points7[..2]),
        };
        let mut out = vec![0.0f32; dim];
        for (what, table) in [
            ("per-row scales", short_scale),
            ("per-row zero points", short_zp),
            ("per-row scales", short_scale6),
            ("per-row zero points", short_zp6),
            ("per-row scales", short_scale7),
            ("per-row zero points", short_zp7),
        ] {
            let err = gather(k, &table, rows, dim, &[0], 1.0, &mut out).unwrap_err();
            assert!(matches!(err, KernelError::Length { what: w, .. } if w == what), "{err}");
        }
        // A u7 table one byte short, and a u6 table's size passed as u7.
        for len in [tables.packed7.len() - 1, tables.packed6.len()] {
            let data = vec![0u8; len];
            let table = Table::U7 {
                data: &data,
                scale: Tensor(1.0),
                zero_point: Tensor(0),
            };
            let err = gather(k, &table, rows, dim, &[0], 1.0, &mut out).unwrap_err();
            assert!(
                matches!(
                    err,
                    KernelError::Length {
                        what: "u7 embedding table",
                        ..
                    }
                ),
                "{err}"
            );
        }
        // rows x u7 row bytes overflowing although rows x dim does not.
        let table = Table::U7 {
            data: &[],
            scale: Tensor(1.0),
            zero_point: Tensor(0),
        };
        assert!(matches!(
            gather(k, &table, usize::MAX / 2, 1, &[0], 1.0, &mut out),
            Err(KernelError::Invalid(_))
        ));
    }
}

#[test]
fn kernels_are_named_per_isa() {
    for isa in Isa::supported() {
        let name = for_isa(isa).name;
        assert!(!name.is_empty());
        if isa != Isa::Scalar {
            assert_ne!(name, SCALAR.name, "{isa:?} fell back to scalar");
        }
    }
}

/// The AVX-512 level unpacks u7 with VBMI exactly where the CPU has it.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_takes_the_vbmi_kernel_where_the_cpu_has_vbmi() {
    if Isa::Avx512.is_supported() {
        let expected = if is_x86_feature_detected!("avx512vbmi") {
            &AVX512_VBMI
        } else {
            &AVX512
        };
        assert_eq!(for_isa(Isa::Avx512).name, expected.name);
        assert_eq!(for_isa(Isa::Amx).name, expected.name);
    }
    assert_ne!(AVX512.name, AVX512_VBMI.name);
}

/// The packed values are what `pack_u6` was given, and the tests' independent reader agrees.
#[test]
fn u6_values_read_back() {
    for dim in [1, 2, 3, 4, 5, 7, 8, 9, 384] {
        let tables = Tables::new(3, dim, dim as u64);
        for r in 0..3 {
            for j in 0..dim {
                assert_eq!(
                    u6_value(&tables.packed6, dim, r, j),
                    tables.q6[r * dim + j],
                    "dim {dim} r {r} j {j}"
                );
            }
        }
        assert_eq!(unpack_u6(&tables.packed6, 3, dim).unwrap(), tables.q6);
    }
}

/// Padding bits (the unused values of a row's last group) are ignored by every kernel, so a
/// file whose writer left garbage there reads the same.
#[test]
fn u6_padding_bits_are_ignored() {
    for dim in [1, 2, 3, 5, 6, 7, 13, 17, 18, 19, 31, 45] {
        let rows = 4;
        let tables = Tables::new(rows, dim, 11 + dim as u64);
        let mut dirty = tables.packed6.clone();
        let row_bytes = u6_row_bytes(dim);
        let used_bits = 6 * (dim % 4);
        for r in 0..rows {
            let last = &mut dirty[r * row_bytes + row_bytes - 3..r * row_bytes + row_bytes];
            let w = u32::from_le_bytes([last[0], last[1], last[2], 0]) | (0xff_ffff << used_bits & 0xff_ffff);
            last.copy_from_slice(&w.to_le_bytes()[..3]);
        }
        assert_ne!(dirty, tables.packed6);
        let ids = [3u32, 0, 2, 1, 3];
        for kernel in kernels_under_test() {
            let mut clean_out = vec![0.0f32; ids.len() * dim];
            let mut dirty_out = vec![0.0f32; ids.len() * dim];
            for (data, out) in [(&tables.packed6, &mut clean_out), (&dirty, &mut dirty_out)] {
                let table = Table::U6 {
                    data,
                    scale: PerRowOrTensor::Row(&tables.scales),
                    zero_point: PerRowOrTensor::Tensor(32),
                };
                gather(kernel, &table, rows, dim, &ids, 1.0, out).unwrap();
            }
            assert_eq!(bits(&clean_out), bits(&dirty_out), "{} dim {dim}", kernel.name);
        }
    }
}

/// The packed u7 values are what `pack_u7` was given, and the tests' independent reader agrees.
#[test]
fn u7_values_read_back() {
    for dim in [1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 384] {
        let tables = Tables::new(3, dim, dim as u64);
        for r in 0..3 {
            for j in 0..dim {
                assert_eq!(
                    u7_value(&tables.packed7, dim, r, j),
                    tables.q7[r * dim + j],
                    "dim {dim} r {r} j {j}"
                );
            }
        }
        assert_eq!(unpack_u7(&tables.packed7, 3, dim).unwrap(), tables.q7);
    }
}

/// Padding bits of u7 rows (the unused values of a row's last group) are ignored by every
/// kernel.
#[test]
fn u7_padding_bits_are_ignored() {
    for dim in [1, 2, 3, 7, 9, 13, 15, 17, 23, 31, 33, 45, 71, 127] {
        let rows = 4;
        let tables = Tables::new(rows, dim, 17 + dim as u64);
        let mut dirty = tables.packed7.clone();
        let row_bytes = u7_row_bytes(dim);
        let used_bits = 7 * (dim % 8);
        let all = (1u64 << 56) - 1;
        for r in 0..rows {
            let last = &mut dirty[r * row_bytes + row_bytes - 7..r * row_bytes + row_bytes];
            let mut word = [0u8; 8];
            word[..7].copy_from_slice(last);
            let w = u64::from_le_bytes(word) | (all << used_bits & all);
            last.copy_from_slice(&w.to_le_bytes()[..7]);
        }
        assert_ne!(dirty, tables.packed7);
        let ids = [3u32, 0, 2, 1, 3];
        for kernel in kernels_under_test() {
            let mut clean_out = vec![0.0f32; ids.len() * dim];
            let mut dirty_out = vec![0.0f32; ids.len() * dim];
            for (data, out) in [(&tables.packed7, &mut clean_out), (&dirty, &mut dirty_out)] {
                let table = Table::U7 {
                    data,
                    scale: PerRowOrTensor::Row(&tables.scales),
                    zero_point: PerRowOrTensor::Tensor(64),
                };
                gather(kernel, &table, rows, dim, &ids, 1.0, out).unwrap();
            }
            assert_eq!(bits(&clean_out), bits(&dirty_out), "{} dim {dim}", kernel.name);
        }
    }
}

/// A longer output than needed: the values past `ids.len() * dim` are untouched.
#[test]
fn output_past_the_gathered_rows_is_untouched() {
    let tables = Tables::new(4, 5, 3);
    for kernel in kernels_under_test() {
        let mut out = vec![-3.0f32; 2 * 5 + 4];
        gather(kernel, &Table::F32(&tables.floats), 4, 5, &[3, 0], 2.0, &mut out).unwrap();
        assert!(out[10..].iter().all(|&x| x == -3.0));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn ragged_shapes_match_definition(
        rows in 1usize..24,
        dim in 1usize..80,
        raw_ids in proptest::collection::vec(any::<u32>(), 0..12),
        seed in any::<u64>(),
    ) {
        let ids: Vec<u32> = raw_ids.iter().map(|&id| id % rows as u32).collect();
        check_shape(rows, dim, &ids, seed);
    }
}
