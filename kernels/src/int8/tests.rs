//! Tests of the int8 family: every kernel this CPU supports (via `Isa::supported()` and
//! `for_isa`) against the scalar reference. Integer sums and all float steps except GELU are
//! bit-exact by construction (see `reference`); GELU outputs get the tolerance of the SIMD
//! activation forms.

use super::*;
use crate::activation::GeluForm;
use crate::test_rng::TestRng;
use crate::Activation;
use proptest::prelude::*;

/// Every kernel this CPU runs, plus the AMX kernel's test forms: on AMX hardware without the
/// small-m threshold, and on emulated tiles wherever AVX-512 VNNI runs (so its addressing,
/// padding and epilogue are checked on CPUs without AMX too).
fn kernels() -> Vec<&'static Int8Kernel> {
    #[allow(unused_mut)]
    let mut list: Vec<&'static Int8Kernel> = Isa::supported().into_iter().map(for_isa).collect();
    #[cfg(target_arch = "x86_64")]
    {
        if Isa::Amx.is_supported() {
            list.push(&amx::EVERY_M);
        }
        if Isa::Avx512.is_supported() {
            list.push(&amx::EMULATED);
        }
    }
    list
}

/// Weights over the full int8 range with the extremes -128 and 127 forced in.
fn extreme_weights(rng: &mut TestRng, n: usize, k: usize) -> Vec<i8> {
    let mut w: Vec<i8> = (0..n * k).map(|_| rng.i8()).collect();
    for (i, v) in w.iter_mut().enumerate() {
        match i % 7 {
            0 => *v = -128,
            3 => *v = 127,
            _ => {}
        }
    }
    w
}

/// Quantized activations in [-127, 127] with many values at +-127.
fn extreme_activations(rng: &mut TestRng, m: usize, layout: &PackedI8Layout, unit_scales: bool) -> QuantizedRows {
    let values: Vec<i8> = (0..m * layout.k_pad)
        .map(|i| match i % 5 {
            0 => 127,
            1 => -127,
            _ => rng.i8().max(-127),
        })
        .collect();
    let scales = (0..m * layout.groups)
        .map(|_| if unit_scales { 1.0 } else { rng.unit().abs() + 0.01 })
        .collect();
    QuantizedRows::from_parts(layout, m, values, scales).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Runs every kernel on `qa` and compares with the reference; `tol` None means bit-exact.
#[allow(clippy::too_many_arguments)]
fn check_quantized(
    qa: &QuantizedRows,
    w: &[i8],
    w_scales: &[f32],
    k_group: Option<usize>,
    epi: &Epilogue,
    tol: Option<f32>,
    what: &str,
) {
    let (m, k, n) = (qa.m(), qa.k, w_scales.len());
    let packed = pack_weights(w, n, k, w_scales, k_group).unwrap();
    let out_stride = n + 3;
    let init: Vec<f32> = (0..m * out_stride).map(|i| (i % 13) as f32 - 6.0).collect();
    let mut expected = init.clone();
    reference::gemm_quantized(qa, w, w_scales, n, epi, &mut expected, out_stride).unwrap();
    for kernel in kernels() {
        let mut got = init.clone();
        matmul_quantized(kernel, qa, &packed.view(), epi, &mut got, out_stride).unwrap();
        match tol {
            None => assert_eq!(
                bits(&got),
                bits(&expected),
                "{} {what} m={m} n={n} k={k} k_group={k_group:?}",
                kernel.name
            ),
            Some(tol) => {
                for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                    assert!(
                        (g - e).abs() <= tol * e.abs().max(1.0),
                        "{} {what} at {i}: {g} vs {e}",
                        kernel.name
                    );
                }
            }
        }
    }
}

#[test]
fn every_supported_level_has_its_own_kernel() {
    // So that the comparisons below really exercise every path this CPU (or qemu) can run.
    for isa in Isa::supported() {
        let kernel = for_isa(isa);
        assert!(kernel.name.contains(isa.name()), "{:?} -> {}", isa, kernel.name);
        println!("int8 kernel for {:?}: {}", isa, kernel.name);
    }
    assert_eq!(for_isa(Isa::Scalar).name, "int8-scalar-1x16");
}

#[test]
fn layout_offsets_and_padding() {
    let l = PackedI8Layout::new(20, 13, None).unwrap();
    assert_eq!((l.n_pad, l.k_pad, l.k_group, l.groups), (32, 16, 16, 1));
    assert_eq!(l.offset(0, 0), 0);
    assert_eq!(l.offset(1, 0), 4);
    assert_eq!(l.offset(0, 5), 64 + 1);
    assert_eq!(l.offset(17, 6), 16 * 16 + 64 + 4 + 2);
    assert_eq!((l.data_len(), l.scales_len(), l.sums_len()), (32 * 16, 32, 32));
    let g = PackedI8Layout::new(5, 100, Some(32)).unwrap();
    assert_eq!((g.n_pad, g.k_pad, g.k_group, g.groups), (16, 128, 32, 4));
    assert!(PackedI8Layout::new(5, 100, Some(48)).is_err());
    assert!(PackedI8Layout::new(5, 100, Some(0)).is_err());
    assert!(PackedI8Layout::new(0, 100, None).is_err());
    assert!(PackedI8Layout::new(usize::MAX / 2, 100, None).is_err());
}

#[test]
fn pack_round_trips_and_sums_columns() {
    let mut rng = TestRng(7);
    for k_group in [None, Some(32), Some(64)] {
        let (n, k) = (21, 70);
        let w = extreme_weights(&mut rng, n, k);
        let scales: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let p = pack_weights(&w, n, k, &scales, k_group).unwrap();
        let v = p.view();
        assert_eq!(unpack_weights(&v), w);
        v.verify_sums().unwrap();
        let l = p.layout;
        for g in 0..l.groups {
            for c in 0..l.n_pad {
                let expect: i32 = if c < n {
                    (g * l.k_group..((g + 1) * l.k_group).min(k))
                        .map(|kk| w[c * k + kk] as i32)
                        .sum()
                } else {
                    0
                };
                assert_eq!(p.col_sums[g * l.n_pad + c], expect);
            }
        }
        assert_eq!(&p.col_scales[..n], &scales[..]);
        assert!(p.col_scales[n..].iter().all(|&s| s == 0.0));
        let from = PackedI8::from_parts(l, &p.data, &p.col_scales, &p.col_sums).unwrap();
        assert_eq!(from.layout(), &l);
        let mut bad = p.col_sums.clone();
        bad[3] += 1;
        assert!(PackedI8::from_parts(l, &p.data, &p.col_scales, &bad)
            .unwrap()
            .verify_sums()
            .is_err());
        assert!(PackedI8::from_parts(l, &p.data[1..], &p.col_scales, &p.col_sums).is_err());
        assert!(PackedI8::from_parts(l, &p.data, &p.col_scales[1..], &p.col_sums).is_err());
        assert!(PackedI8::from_parts(l, &p.data, &p.col_scales, &p.col_sums[1..]).is_err());
        let wrong = PackedI8Layout {
            k_pad: l.k_pad + 8,
            ..l
        };
        assert!(PackedI8::from_parts(wrong, &p.data, &p.col_scales, &p.col_sums).is_err());
    }
}

#[test]
fn weight_quantizer() {
    let w = [0.5, -1.0, 0.25, 0.0, 0.0, 0.0, 2.0, 1.0, -0.01];
    let (q, s) = quantize_weights_per_channel(&w, 3, 3);
    assert_eq!(s, vec![1.0 / 127.0, 1.0, 2.0 / 127.0]);
    assert_eq!(&q[..3], &[64, -127, 32]); // 63.5 rounds half to even
    assert_eq!(&q[3..6], &[0, 0, 0]);
    assert_eq!(&q[6..], &[127, 64, -1]); // 63.5 -> 64, -0.635 -> -1
}

#[test]
fn quantizers_agree_on_every_isa() {
    let mut rng = TestRng(11);
    for (k, k_group) in [
        (1, None),
        (7, None),
        (33, None),
        (384, None),
        (100, Some(32)),
        (300, Some(64)),
        (1536, None),
        (1536, Some(32)),
        (1152, Some(64)),
        (16 * 32 + 8, Some(32)),
    ] {
        let layout = PackedI8Layout::new(16, k, k_group).unwrap();
        let m = 5;
        let stride = k + 2;
        let mut a: Vec<f32> = (0..m * stride).map(|_| rng.unit() * 10.0).collect();
        // Ties at half steps, an all-zero row, a row with a NaN, tiny values.
        for v in &mut a[..stride] {
            *v = ((rng.next_u32() % 255) as f32 - 127.0) / 2.0;
        }
        a[stride..2 * stride].fill(0.0);
        a[2 * stride + k / 2] = f32::NAN;
        a[3 * stride..4 * stride].iter_mut().for_each(|v| *v *= 1e-39);
        let expected = reference::quantize_rows(&a, stride, m, &layout).unwrap();
        assert!(expected.row(1).iter().all(|&q| q == 0) && expected.row_scales(1).iter().all(|&s| s == 0.0));
        for kernel in kernels() {
            let got = quantize_rows(kernel, &a, stride, m, &layout).unwrap();
            for r in [0, 1, 3, 4] {
                assert_eq!(got.row(r), expected.row(r), "{} row {r} k={k}", kernel.name);
                assert_eq!(
                    bits(got.row_scales(r)),
                    bits(expected.row_scales(r)),
                    "{} scales row {r}",
                    kernel.name
                );
            }
            // NaN inputs are unspecified but must not break the other values of their group.
            assert_eq!(got.row_scales(2), expected.row_scales(2), "{}", kernel.name);
        }
        // Ties quantize half to even: the first row's max is |x| <= 63.5 so values hit halves.
        let row = expected.row(0);
        assert!(row.iter().all(|&q| q >= -127));
    }
}

/// A row of k values whose groups of `k_group` cycle through the cases the quantizers must
/// agree on: plain values, all zeros, +-inf, NaN (one, all, beside inf), values near f32::MAX,
/// subnormals, maxima at the edge where `127 / maxabs` overflows, and half steps with -0.
fn quantizer_corner_row(rng: &mut TestRng, k: usize, k_group: usize) -> Vec<f32> {
    let mut x = rng.vec(k, 10.0);
    let overflow_edge = quantize::Q_MAX / f32::MAX;
    for (g, xs) in x.chunks_mut(k_group).enumerate() {
        let at = rng.below(xs.len());
        match g % 12 {
            0 => {}
            1 => xs.fill(0.0),
            2 => xs[at] = f32::INFINITY,
            3 => xs[at] = f32::NEG_INFINITY,
            4 => xs[at] = f32::NAN,
            5 => xs.fill(f32::NAN),
            6 => {
                xs[at] = f32::NAN;
                xs[(at + 1) % xs.len()] = f32::INFINITY;
            }
            7 => {
                xs.iter_mut().for_each(|v| *v *= 3e37);
                xs[at] = if g % 2 == 0 { f32::MAX } else { -f32::MAX };
            }
            8 => xs.iter_mut().for_each(|v| *v *= 1e-39),
            9 => {
                xs.iter_mut().for_each(|v| *v *= 1e-38);
                xs[at] = [overflow_edge.next_down(), overflow_edge, overflow_edge.next_up()][g / 12 % 3];
            }
            10 => {
                xs.iter_mut().for_each(|v| *v = (rng.below(255) as f32 - 127.0) / 2.0);
                xs[at] = -0.0;
            }
            _ => xs.fill(-0.0),
        }
    }
    x
}

/// Group sizes the SIMD quantizer tests cover: the batched ones (16-64) and one that is not.
#[cfg(target_arch = "x86_64")]
const QUANTIZER_TEST_GROUPS: [usize; 5] = [16, 32, 48, 64, 128];

/// Row lengths for the SIMD quantizer tests with groups of `k_group`: model shapes (MiniLM's
/// 1536, Gemma's 1152 and 768), short rows and short last groups.
#[cfg(target_arch = "x86_64")]
fn quantizer_test_lengths(k_group: usize) -> [usize; 8] {
    [
        1536,
        1152,
        768,
        40,
        16 * 32 + 8,
        16 * k_group + 8,
        33 * k_group,
        48 * k_group - 16,
    ]
}

/// The AVX-512 quantizer, whose small groups (16 to 64 values) go 16 at a time through a
/// transposed reduction, against the scalar definition: identical scales (bit for bit) and
/// codes, except the codes of NaN inputs (unspecified), which must equal those of the
/// one-group-at-a-time path. Model shapes (MiniLM's k = 1536, Gemma's 1152 and 768), short
/// rows and short last groups, with and without the corner cases of `quantizer_corner_row`.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_grouped_quantizer_matches_scalar() {
    if !Isa::Avx512.is_supported() {
        return;
    }
    let mut rng = TestRng(19);
    for k_group in QUANTIZER_TEST_GROUPS {
        for k in quantizer_test_lengths(k_group) {
            let plain = rng.vec(k, 4.0);
            let corners = quantizer_corner_row(&mut rng, k, k_group);
            for (x, what) in [(&plain, "plain"), (&corners, "corners")] {
                let k_pad = k.next_multiple_of(k_group);
                let groups = k_pad / k_group;
                let (mut q_ref, mut s_ref) = (vec![0i8; k_pad], vec![0f32; groups]);
                quantize::quantize_row_scalar(x, k_group, &mut q_ref, &mut s_ref);
                // Non-zero starting values: every output must be written.
                let (mut q, mut s) = (vec![5i8; k_pad], vec![5f32; groups]);
                avx512::quantize_row(x, k_group, &mut q, &mut s);
                let at = format!("{what} k={k} k_group={k_group}");
                assert_eq!(bits(&s), bits(&s_ref), "scales {at}");
                for (i, (&got, &want)) in q.iter().zip(&q_ref).enumerate() {
                    if i >= k || !x[i].is_nan() {
                        assert_eq!(got, want, "code {i} {at}");
                    }
                }
                let (mut q_one, mut s_one) = (vec![5i8; k_pad], vec![5f32; groups]);
                // SAFETY: AVX-512 F/BW checked above; the lengths fit as for `quantize_row`.
                unsafe { avx512::quantize_groups_one_by_one(x, k_group, &mut q_one, &mut s_one) };
                assert_eq!(q, q_one, "codes against one group at a time {at}");
                assert_eq!(bits(&s), bits(&s_one), "scales against one group at a time {at}");
            }
        }
    }
}

#[test]
fn integer_sums_exact_with_extreme_values() {
    let mut rng = TestRng(1);
    let shapes: &[(usize, usize, usize)] = if cfg!(target_arch = "x86_64") {
        &[
            (1, 1, 1),
            (3, 17, 9),
            (13, 33, 40),
            (25, 48, 384),
            (12, 384, 1536),
            (30, 70, 3072),
        ]
    } else {
        &[(1, 1, 1), (3, 17, 9), (13, 33, 40), (9, 48, 384)]
    };
    for &(m, n, k) in shapes {
        for k_group in [None, Some(32), Some(128)] {
            let layout = PackedI8Layout::new(n, k, k_group).unwrap();
            let w = extreme_weights(&mut rng, n, k);
            let qa = extreme_activations(&mut rng, m, &layout, true);
            check_quantized(&qa, &w, &vec![1.0; n], k_group, &Epilogue::NONE, None, "unit scales");
        }
    }
    // The largest possible sums: all products 127 * -128 or -127 * -128.
    for (act, wv) in [(127i8, -128i8), (-127, -128), (127, 127), (-127, 127)] {
        let (m, n, k) = (5, 20, 1000);
        let layout = PackedI8Layout::new(n, k, None).unwrap();
        let qa = QuantizedRows::from_parts(&layout, m, vec![act; m * layout.k_pad], vec![1.0; m]).unwrap();
        check_quantized(
            &qa,
            &vec![wv; n * k],
            &vec![1.0; n],
            None,
            &Epilogue::NONE,
            None,
            "saturation corner",
        );
    }
}

#[test]
fn scaled_outputs_and_epilogues_match_reference() {
    let mut rng = TestRng(3);
    let (m, n, k) = (14, 37, 200);
    let bias: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
    for k_group in [None, Some(64)] {
        let layout = PackedI8Layout::new(n, k, k_group).unwrap();
        let w = extreme_weights(&mut rng, n, k);
        let w_scales: Vec<f32> = (0..n).map(|_| rng.unit().abs() * 1e-3).collect();
        let qa = extreme_activations(&mut rng, m, &layout, false);
        let exact = [
            Epilogue::NONE,
            Epilogue {
                bias: Some(&bias),
                ..Epilogue::NONE
            },
            Epilogue {
                bias: Some(&bias),
                activation: Activation::Relu,
                accumulate: false,
            },
            Epilogue {
                bias: None,
                activation: Activation::Relu,
                accumulate: true,
            },
            Epilogue {
                bias: Some(&bias),
                activation: Activation::None,
                accumulate: true,
            },
        ];
        for epi in &exact {
            check_quantized(&qa, &w, &w_scales, k_group, epi, None, "exact epilogue");
        }
        // GELU: the SIMD forms differ from the scalar form by a few ulp (activation.rs bounds
        // them by 2e-6 relative); 1e-5 relative leaves room for the residual add.
        for form in [GeluForm::Erf, GeluForm::Tanh] {
            for accumulate in [false, true] {
                let epi = Epilogue {
                    bias: Some(&bias),
                    activation: Activation::Gelu(form),
                    accumulate,
                };
                check_quantized(&qa, &w, &w_scales, k_group, &epi, Some(1e-5), "gelu");
            }
        }
    }
}

/// End to end from f32 activations: all ISAs must equal the scalar reference bit for bit
/// (identical quantization and float steps).
fn check_f32(m: usize, n: usize, k: usize, k_group: Option<usize>, seed: u64) {
    let mut rng = TestRng(seed | 1);
    let a_stride = k + 5;
    let a: Vec<f32> = (0..m * a_stride).map(|_| rng.unit() * 4.0).collect();
    let wf: Vec<f32> = (0..n * k).map(|_| rng.unit()).collect();
    let (w, w_scales) = quantize_weights_per_channel(&wf, n, k);
    let bias: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
    let epi = Epilogue {
        bias: Some(&bias),
        activation: Activation::Relu,
        accumulate: false,
    };
    let packed = pack_weights(&w, n, k, &w_scales, k_group).unwrap();
    let mut expected = vec![0f32; m * n];
    reference::matmul(&a, a_stride, m, &w, &w_scales, n, k, k_group, &epi, &mut expected, n).unwrap();
    for kernel in kernels() {
        let mut got = vec![0f32; m * n];
        matmul(kernel, &a, a_stride, m, &packed.view(), &epi, &mut got, n).unwrap();
        assert_eq!(
            bits(&got),
            bits(&expected),
            "{} m={m} n={n} k={k} k_group={k_group:?}",
            kernel.name
        );
    }
}

#[test]
fn f32_rows_end_to_end_including_one_row() {
    check_f32(1, 1536, 384, None, 1);
    check_f32(1, 384, 1536, None, 2);
    check_f32(1, 40, 70, Some(32), 3);
    check_f32(7, 50, 96, Some(96), 4);
}

#[test]
fn model_shapes() {
    // MiniLM: hidden 384, FFN 1536. Gemma: hidden 768, FFN 1152, q/k/v 768 -> 3 x 256.
    let shapes: &[(usize, usize, usize)] = if cfg!(target_arch = "x86_64") {
        &[
            (33, 1536, 384),
            (33, 384, 1536),
            (20, 768, 768),
            (20, 1152, 768),
            (20, 768, 1152),
            (20, 256, 768),
        ]
    } else {
        &[(9, 384, 384), (5, 256, 768)]
    };
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        check_f32(m, n, k, None, 10 + i as u64);
        check_f32(m, n, k, Some(32), 20 + i as u64);
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let (m, n, k) = if cfg!(target_arch = "x86_64") {
        (200, 384, 768)
    } else {
        (40, 96, 128)
    };
    let mut rng = TestRng(5);
    let a: Vec<f32> = (0..m * k).map(|_| rng.unit()).collect();
    let wf: Vec<f32> = (0..n * k).map(|_| rng.unit()).collect();
    let (w, s) = quantize_weights_per_channel(&wf, n, k);
    let bias: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
    for k_group in [None, Some(64)] {
        let packed = pack_weights(&w, n, k, &s, k_group).unwrap();
        let epi = Epilogue {
            bias: Some(&bias),
            activation: Activation::Gelu(GeluForm::Tanh),
            accumulate: false,
        };
        for kernel in kernels() {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut out = vec![0f32; m * n];
                pool.install(|| matmul(kernel, &a, k, m, &packed.view(), &epi, &mut out, n))
                    .unwrap();
                out
            };
            assert_eq!(bits(&run(1)), bits(&run(2)), "{}", kernel.name);
            assert_eq!(bits(&run(1)), bits(&run(3)), "{}", kernel.name);
        }
    }
}

/// Two chained layers ([`matmul_to_quantized`], then [`matmul_quantized`]) give the same bits as the first into f32 rows and the
/// second from them, on every kernel and thread count: ragged m (one tile, several, a short
/// last tile), an n off the 16-column grid and off the second layer's groups, groups of 32 to
/// 128 and one scale per row for the second layer, the first with a bias and GELU, the second
/// accumulating (a residual add), and sizes that split the first product into several column
/// blocks.
#[test]
fn chained_layers_match_two_products() {
    let mut rng = TestRng(41);
    let shapes: &[(usize, usize, usize, usize)] = if cfg!(target_arch = "x86_64") {
        &[
            (1, 64, 200, 48),
            (13, 384, 1536, 384),
            (40, 96, 300, 70),
            (130, 384, 1536, 384),
        ]
    } else {
        &[(1, 64, 200, 48), (13, 96, 300, 70), (40, 64, 520, 40)]
    };
    for &(m, k1, n1, n2) in shapes {
        let a: Vec<f32> = (0..m * (k1 + 5)).map(|_| rng.unit() * 3.0).collect();
        let wf1: Vec<f32> = (0..n1 * k1).map(|_| rng.unit()).collect();
        let wf2: Vec<f32> = (0..n2 * n1).map(|_| rng.unit()).collect();
        let (w1, s1) = quantize_weights_per_channel(&wf1, n1, k1);
        let (w2, s2) = quantize_weights_per_channel(&wf2, n2, n1);
        let bias1: Vec<f32> = (0..n1).map(|_| rng.unit()).collect();
        let bias2: Vec<f32> = (0..n2).map(|_| rng.unit()).collect();
        let epi1 = Epilogue {
            bias: Some(&bias1),
            activation: Activation::Gelu(GeluForm::Erf),
            accumulate: false,
        };
        let epi2 = Epilogue {
            bias: Some(&bias2),
            activation: Activation::None,
            accumulate: true,
        };
        let out_stride = n2 + 3;
        let init: Vec<f32> = (0..m * out_stride).map(|i| (i % 11) as f32 - 5.0).collect();
        for (g1, g2) in [
            (Some(64), Some(128)),
            (None, Some(32)),
            (Some(32), Some(64)),
            (None, None),
        ] {
            let p1 = pack_weights(&w1, n1, k1, &s1, g1).unwrap();
            let p2 = pack_weights(&w2, n2, n1, &s2, g2).unwrap();
            // The second layer's rows centered too, where its layout has several groups.
            let centered_second: &[bool] = if p2.view().layout().groups > 1 {
                &[false, true]
            } else {
                &[false]
            };
            for kernel in kernels() {
                for &centered in centered_second {
                    let mut middle = vec![0f32; m * n1];
                    let mut want = init.clone();
                    matmul(kernel, &a, k1 + 5, m, &p1.view(), &epi1, &mut middle, n1).unwrap();
                    let second = if centered { matmul_centered } else { matmul };
                    second(kernel, &middle, n1, m, &p2.view(), &epi2, &mut want, out_stride).unwrap();
                    for threads in [1, 2, 3] {
                        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                        let mut got = init.clone();
                        pool.install(|| {
                            let (v1, v2) = (p1.view(), p2.view());
                            let mut rows = QuantizedRows::default();
                            let layout = v2.layout();
                            matmul_to_quantized(kernel, &a, k1 + 5, m, false, &v1, &epi1, layout, centered, &mut rows)?;
                            matmul_quantized(kernel, &rows, &v2, &epi2, &mut got, out_stride)
                        })
                        .unwrap();
                        assert_eq!(
                            bits(&got),
                            bits(&want),
                            "{} m {m} {k1}->{n1}->{n2} groups {g1:?} {g2:?} centered {centered} threads {threads}",
                            kernel.name
                        );
                    }
                }
            }
        }
    }
    // Mismatched layers and an accumulating first layer are errors.
    let kernel = for_isa(Isa::Scalar);
    let p1 = pack_weights(&[1; 64 * 32], 64, 32, &[1.0; 64], None).unwrap();
    let chain = |w2: &PackedI8Owned, first: &Epilogue| {
        let mut rows = QuantizedRows::default();
        matmul_to_quantized(
            kernel,
            &[0.5; 32],
            32,
            1,
            false,
            &p1.view(),
            first,
            w2.view().layout(),
            false,
            &mut rows,
        )
    };
    let k48 = pack_weights(&[1; 8 * 48], 8, 48, &[1.0; 8], None).unwrap();
    let k64 = pack_weights(&[1; 8 * 64], 8, 64, &[1.0; 8], None).unwrap();
    let accumulate = Epilogue {
        accumulate: true,
        ..Epilogue::NONE
    };
    assert!(chain(&k48, &Epilogue::NONE).is_err());
    // Centered outputs need a second layer with several groups.
    let mut rows = QuantizedRows::default();
    let one_group = matmul_to_quantized(
        kernel,
        &[0.5; 32],
        32,
        1,
        false,
        &p1.view(),
        &Epilogue::NONE,
        k64.view().layout(),
        true,
        &mut rows,
    );
    assert!(one_group.is_err());
    assert!(chain(&k64, &accumulate).is_err());
    assert!(chain(&k64, &Epilogue::NONE).is_ok());
}

/// The AMX kernel's own sweep: every m from 1 to 70 (one and two row halves, ragged row
/// tiles), n off the 16-column grid (odd panel counts), k below, at and past multiples of 64
/// (the narrow tile and the overlapping tail block), -128 weights, every epilogue, one scale
/// per row and groups of 64, 128 and 192 (up to 9 groups, folded a few at a time). Exact
/// epilogues are bit-identical to the reference; GELU is bit-identical to the VNNI kernel,
/// whose float steps and AVX-512 GELU it shares.
#[cfg(target_arch = "x86_64")]
#[test]
fn amx_ragged_shapes_every_epilogue() {
    let mut amx_kernels: Vec<&'static Int8Kernel> = Vec::new();
    if Isa::Amx.is_supported() {
        amx_kernels.push(&amx::EVERY_M);
    }
    if Isa::Avx512.is_supported() {
        amx_kernels.push(&amx::EMULATED);
    }
    if !Isa::Avx512.is_supported() {
        return;
    }
    let vnni = for_isa(Isa::Avx512);
    let mut rng = TestRng(13);
    let ns = [1, 15, 17, 33, 47, 64];
    let ks = [8, 24, 56, 64, 72, 120, 136, 200, 384, 576];
    // One scale per row, then groups of whole k-blocks (folded per group in the tiles).
    for k_group in [None, Some(64), Some(128), Some(192)] {
        for m in 1..=70usize {
            let (n, k) = (ns[m % ns.len()], ks[m % ks.len()]);
            let layout = PackedI8Layout::new(n, k, k_group).unwrap();
            let w = extreme_weights(&mut rng, n, k);
            let w_scales: Vec<f32> = (0..n).map(|_| rng.unit().abs() * 1e-2).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
            let qa = extreme_activations(&mut rng, m, &layout, false);
            let packed = pack_weights(&w, n, k, &w_scales, k_group).unwrap();
            let activation = match m % 4 {
                0 => Activation::None,
                1 => Activation::Relu,
                2 => Activation::Gelu(GeluForm::Erf),
                _ => Activation::Gelu(GeluForm::Tanh),
            };
            let epi = Epilogue {
                bias: (m % 3 != 0).then_some(&bias[..]),
                activation,
                accumulate: m % 2 == 1,
            };
            let out_stride = n + 5;
            let init: Vec<f32> = (0..m * out_stride).map(|i| (i % 11) as f32 - 5.0).collect();
            let mut expected = init.clone();
            if matches!(activation, Activation::Gelu(_)) {
                matmul_quantized(vnni, &qa, &packed.view(), &epi, &mut expected, out_stride).unwrap();
            } else {
                reference::gemm_quantized(&qa, &w, &w_scales, n, &epi, &mut expected, out_stride).unwrap();
            }
            for &kernel in &amx_kernels {
                assert_eq!(
                    kernel.for_call(m, &layout).name,
                    kernel.name,
                    "{k_group:?} runs on the tiles"
                );
                let mut got = init.clone();
                matmul_quantized(kernel, &qa, &packed.view(), &epi, &mut got, out_stride).unwrap();
                let what = format!("{} m={m} n={n} k={k} k_group={k_group:?} {epi:?}", kernel.name);
                assert_eq!(bits(&got), bits(&expected), "{what}");
            }
        }
    }
}

/// Which calls the AMX kernel hands to VNNI: groups of partial k-blocks always, the rest below
/// `AMX_MIN_ROWS` rows.
#[cfg(target_arch = "x86_64")]
#[test]
fn amx_delegates_small_m_and_grouped_layouts() {
    let per_row = PackedI8Layout::new(64, 384, None).unwrap();
    let grouped = PackedI8Layout::new(64, 384, Some(32)).unwrap();
    let vnni = "x86_64-u8i8-12x32-avx512vnni";
    assert_eq!(amx::KERNEL.for_call(amx::AMX_MIN_ROWS - 1, &per_row).name, vnni);
    assert_eq!(amx::KERNEL.for_call(amx::AMX_MIN_ROWS, &per_row).name, amx::KERNEL.name);
    assert_eq!(amx::KERNEL.for_call(4096, &grouped).name, vnni);
    let whole_blocks = PackedI8Layout::new(64, 384, Some(128)).unwrap();
    assert_eq!(amx::KERNEL.for_call(4096, &whole_blocks).name, amx::KERNEL.name);
    assert_eq!(amx::KERNEL.for_call(amx::AMX_MIN_ROWS - 1, &whole_blocks).name, vnni);
    assert_eq!(amx::EMULATED.for_call(1, &per_row).name, amx::EMULATED.name);
    // A single group as large as k_pad is the per-row case.
    let one_group = PackedI8Layout::new(64, 100, Some(128)).unwrap();
    assert_eq!(amx::KERNEL.for_call(64, &one_group).name, amx::KERNEL.name);
}

#[test]
fn bad_arguments_are_errors() {
    let (m, n, k) = (3, 20, 30);
    let w = vec![1i8; n * k];
    let s = vec![1f32; n];
    assert!(pack_weights(&w[1..], n, k, &s, None).is_err());
    assert!(pack_weights(&w, n, k, &s[1..], None).is_err());
    let packed = pack_weights(&w, n, k, &s, None).unwrap();
    let v = packed.view();
    let a = vec![0.5f32; m * k];
    let bias = vec![0f32; n];
    for kernel in kernels() {
        let mut out = vec![0f32; m * n];
        assert!(matmul(kernel, &a[1..], k, m, &v, &Epilogue::NONE, &mut out, n).is_err());
        assert!(matmul(kernel, &a, k - 1, m, &v, &Epilogue::NONE, &mut out, n).is_err());
        assert!(matmul(kernel, &a, k, m, &v, &Epilogue::NONE, &mut out[1..], n).is_err());
        assert!(matmul(kernel, &a, k, m, &v, &Epilogue::NONE, &mut out, n - 1).is_err());
        let short_bias = Epilogue {
            bias: Some(&bias[1..]),
            ..Epilogue::NONE
        };
        assert!(matmul(kernel, &a, k, m, &v, &short_bias, &mut out, n).is_err());
        assert!(matmul(kernel, &a, k, 0, &v, &Epilogue::NONE, &mut [], n).is_ok());
        let other = PackedI8Layout::new(n, k, Some(64)).unwrap();
        let qa = QuantizedRows::from_parts(&other, m, vec![0; m * other.k_pad], vec![1.0; m * other.groups]).unwrap();
        assert!(matmul_quantized(kernel, &qa, &v, &Epilogue::NONE, &mut out, n).is_err());
        matmul(kernel, &a, k, m, &v, &Epilogue::NONE, &mut out, n).unwrap();
        assert!(out.iter().all(|&x| (x - 15.0).abs() < 1e-3), "{}", kernel.name);
    }
    let l = v.layout();
    assert!(QuantizedRows::from_parts(l, m, vec![-128; m * l.k_pad], vec![1.0; m]).is_err());
    assert!(QuantizedRows::from_parts(l, m, vec![0; m * l.k_pad - 1], vec![1.0; m]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn ragged_shapes_match_reference(
        m in 1usize..30,
        n in 1usize..70,
        k in 1usize..150,
        grouped in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let k_group = grouped.then_some(32);
        let mut rng = TestRng(seed | 1);
        let layout = PackedI8Layout::new(n, k, k_group).unwrap();
        let w = extreme_weights(&mut rng, n, k);
        let qa = extreme_activations(&mut rng, m, &layout, true);
        check_quantized(&qa, &w, &vec![1.0; n], k_group, &Epilogue::NONE, None, "proptest");
        check_f32(m, n, k, k_group, seed);
    }
}

/// Centered rows ([`centered`]), end to end from f32 activations that sit off-centre (a
/// shift per column, as a norm's bias gives, plus outliers): every kernel equals the scalar
/// reference bit for bit, with and without GELU's tolerance, on ragged shapes and at the
/// model shapes, in one thread and in the pool.
fn check_centered(m: usize, n: usize, k: usize, k_group: usize, seed: u64, epi: &Epilogue, tol: Option<f32>) {
    let mut rng = TestRng(seed | 1);
    let a_stride = k + 3;
    let shift: Vec<f32> = (0..k).map(|_| rng.unit() * 3.0).collect();
    let a: Vec<f32> = (0..m * a_stride)
        .map(|i| {
            let col = i % a_stride;
            let outlier = if (i * 7919) % 61 == 0 { 20.0 } else { 1.0 };
            rng.unit() * outlier + shift.get(col).copied().unwrap_or(0.0)
        })
        .collect();
    let wf: Vec<f32> = (0..n * k).map(|_| rng.unit()).collect();
    let (w, w_scales) = quantize_weights_per_channel(&wf, n, k);
    let packed = pack_weights(&w, n, k, &w_scales, Some(k_group)).unwrap();
    let init: Vec<f32> = (0..m * n).map(|i| (i % 11) as f32 - 5.0).collect();
    let mut expected = init.clone();
    reference::matmul_centered(
        &a,
        a_stride,
        m,
        &w,
        &w_scales,
        n,
        k,
        Some(k_group),
        epi,
        &mut expected,
        n,
    )
    .unwrap();
    for kernel in kernels() {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut got = init.clone();
            pool.install(|| matmul_centered(kernel, &a, a_stride, m, &packed.view(), epi, &mut got, n))
                .unwrap();
            let what = format!("{} m={m} n={n} k={k} k_group={k_group} threads={threads}", kernel.name);
            match tol {
                None => assert_eq!(bits(&got), bits(&expected), "{what}"),
                Some(tol) => {
                    for (g, e) in got.iter().zip(&expected) {
                        assert!((g - e).abs() <= tol * e.abs().max(1.0), "{what}: {g} vs {e}");
                    }
                }
            }
        }
    }
}

#[test]
fn centered_rows_match_reference() {
    let bias: Vec<f32> = (0..1536).map(|i| (i as f32 * 0.37).sin()).collect();
    let exact = [
        Epilogue::NONE,
        Epilogue {
            bias: Some(&bias[..50]),
            activation: Activation::Relu,
            accumulate: true,
        },
    ];
    for (s, epi) in exact.iter().enumerate() {
        check_centered(1, 50, 70, 32, 1 + s as u64, epi, None);
        check_centered(13, 50, 96, 32, 3 + s as u64, epi, None);
        check_centered(7, 50, 200, 64, 5 + s as u64, epi, None);
        // Nine groups of 128 (EmbeddingGemma's FFN down): the AMX kernel folds them in three
        // passes of FOLD_GROUPS.
        check_centered(40, 50, 1152, 128, 9 + s as u64, epi, None);
    }
    // Model shapes: MiniLM's QKV (groups of 64) and FFN up with its GELU.
    check_centered(33, 1152, 384, 64, 7, &Epilogue::NONE, None);
    let gelu = Epilogue {
        bias: Some(&bias),
        activation: Activation::Gelu(GeluForm::Erf),
        accumulate: false,
    };
    check_centered(20, 1536, 384, 64, 8, &gelu, Some(1e-5));
}

#[test]
fn centered_quantizers_agree_and_offsets_reach_the_product() {
    let mut rng = TestRng(11);
    let (m, n, k) = (5, 40, 130);
    let layout = PackedI8Layout::new(n, k, Some(32)).unwrap();
    let a: Vec<f32> = (0..m * k)
        .map(|i| rng.unit() + if i % 3 == 0 { 4.0 } else { 2.0 })
        .collect();
    let expected = quantize::quantize_rows_centered(for_isa(Isa::Scalar), &a, k, m, &layout).unwrap();
    for kernel in kernels() {
        let got = quantize::quantize_rows_centered(kernel, &a, k, m, &layout).unwrap();
        assert_eq!(got, expected, "{}", kernel.name);
    }
    // Centered codes are finer than symmetric ones on shifted inputs: the product is closer
    // to the f32 one.
    let wf: Vec<f32> = (0..n * k).map(|_| rng.unit()).collect();
    let (w, w_scales) = quantize_weights_per_channel(&wf, n, k);
    let exact: Vec<f64> = (0..m * n)
        .map(|i| {
            let (r, c) = (i / n, i % n);
            (0..k)
                .map(|j| f64::from(a[r * k + j]) * f64::from(w[c * k + j]) * f64::from(w_scales[c]))
                .sum()
        })
        .collect();
    let error = |centered: bool| {
        let mut out = vec![0f32; m * n];
        let f = if centered {
            reference::matmul_centered
        } else {
            reference::matmul
        };
        f(&a, k, m, &w, &w_scales, n, k, Some(32), &Epilogue::NONE, &mut out, n).unwrap();
        out.iter()
            .zip(&exact)
            .map(|(&o, &e)| (f64::from(o) - e).powi(2))
            .sum::<f64>()
    };
    assert!(error(true) < 0.5 * error(false), "{} vs {}", error(true), error(false));
}

#[test]
fn centered_rows_need_groups() {
    let layout = PackedI8Layout::new(16, 64, None).unwrap();
    let w = vec![1i8; 16 * 64];
    let packed = pack_weights(&w, 16, 64, &[1.0; 16], None).unwrap();
    let mut out = vec![0f32; 16];
    let err = matmul_centered(
        for_isa(Isa::Scalar),
        &[1.0; 64],
        64,
        1,
        &packed.view(),
        &Epilogue::NONE,
        &mut out,
        16,
    );
    assert!(err.is_err());
    let qa = QuantizedRows::from_parts(&layout, 1, vec![0; 64], vec![1.0]).unwrap();
    assert!(qa.with_offsets(vec![0.0]).is_err());
}

/// The AVX-512 centered quantizer (16 small groups at a time, the rest one by one) against
/// the scalar definition: identical scales and offsets (bit for bit) and codes, except the
/// codes of NaN inputs (unspecified), on the shapes and corner rows of
/// `avx512_grouped_quantizer_matches_scalar`, plus constant groups (exactly their offset).
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_centered_quantizer_matches_scalar() {
    if !Isa::Avx512.is_supported() {
        return;
    }
    let mut rng = TestRng(23);
    for k_group in QUANTIZER_TEST_GROUPS {
        for k in quantizer_test_lengths(k_group) {
            let plain: Vec<f32> = rng
                .vec(k, 4.0)
                .iter()
                .enumerate()
                .map(|(i, v)| v + (i % 7) as f32)
                .collect();
            let corners = quantizer_corner_row(&mut rng, k, k_group);
            let mut constant = rng.vec(k, 4.0);
            for (g, xs) in constant.chunks_mut(k_group).enumerate() {
                if g % 3 == 0 {
                    xs.fill(1.5 + g as f32);
                }
            }
            for (x, what) in [(&plain, "plain"), (&corners, "corners"), (&constant, "constant")] {
                let k_pad = k.next_multiple_of(k_group);
                let groups = k_pad / k_group;
                let (mut q_ref, mut s_ref, mut o_ref) = (vec![0i8; k_pad], vec![0f32; groups], vec![0f32; groups]);
                centered::quantize_row_centered_scalar(x, k_group, &mut q_ref, &mut s_ref, &mut o_ref);
                let (mut q, mut s, mut o) = (vec![5i8; k_pad], vec![5f32; groups], vec![5f32; groups]);
                avx512::quantize_row_centered(x, k_group, &mut q, &mut s, &mut o);
                let at = format!("{what} k={k} k_group={k_group}");
                assert_eq!(bits(&s), bits(&s_ref), "scales {at}");
                assert_eq!(bits(&o), bits(&o_ref), "offsets {at}");
                for (i, (&got, &want)) in q.iter().zip(&q_ref).enumerate() {
                    if i >= k || !x[i].is_nan() {
                        assert_eq!(got, want, "code {i} {at}");
                    }
                }
            }
        }
    }
}
