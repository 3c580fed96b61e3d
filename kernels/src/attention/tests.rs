//! Attention tests: every kernel the host supports against the scalar reference and against
//! direct f64 attention, on ragged shapes (lengths 1..300, head widths 8/32/64/256, grouped
//! query heads, sliding windows, a relative bias, blocks that start mid-sequence), plus the
//! argument checks. Each tolerance says where the difference comes from.

use super::*;
use crate::test_rng::TestRng;

/// One test case: a sequence's fused rows and a geometry.
struct Case {
    len: usize,
    head_dim: usize,
    /// Query heads sharing the one key/value head.
    heads: usize,
    scale: f32,
    window: Option<usize>,
    qkv: Vec<f32>,
    stride: usize,
    /// [heads, 2 len - 1] relative bias, zero at len - 1, if any.
    bias: Option<Vec<f32>>,
}

impl Case {
    /// Rows laid out as [1 unrelated head | heads query heads | key | value | 3 spare], so
    /// no column starts at 0 and the stride is not a power of two.
    fn new(
        seed: u64,
        len: usize,
        head_dim: usize,
        heads: usize,
        scale: f32,
        window: Option<usize>,
        bias: bool,
    ) -> Case {
        let mut rng = TestRng(seed);
        let stride = (heads + 3) * head_dim + 3;
        // Values in [-2, 2): scores up to a few units, so softmax is neither flat nor one-hot.
        let qkv = rng.vec(len * stride, 2.0);
        let bias = bias.then(|| rng.vec(heads * (2 * len - 1), 1.5));
        Case {
            len,
            head_dim,
            heads,
            scale,
            window,
            qkv,
            stride,
            bias,
        }
    }

    fn block(&self, rows: Range<usize>) -> AttentionBlock<'_> {
        let hd = self.head_dim;
        AttentionBlock {
            qkv: &self.qkv,
            stride: self.stride,
            len: self.len,
            head_dim: hd,
            heads: self.heads,
            q_col: hd,
            k_col: (self.heads + 1) * hd,
            v_col: (self.heads + 2) * hd,
            rows,
            scale: self.scale,
            window: self.window,
            bias: self.bias.as_deref().map(|values| RelativeBias {
                values,
                head_stride: 2 * self.len - 1,
                zero: self.len - 1,
            }),
        }
    }

    /// Direct f64 attention of query row i, head g.
    fn reference(&self, i: usize, g: usize) -> Vec<f64> {
        let b = self.block(0..self.len);
        let at = |t: usize, col: usize| self.qkv[t * self.stride + col] as f64;
        let hd = self.head_dim;
        let mut s: Vec<f64> = (0..self.len)
            .map(|j| {
                if self.window.is_some_and(|w| i.abs_diff(j) > w) {
                    return f64::NEG_INFINITY;
                }
                let dot: f64 = (0..hd).map(|d| at(i, b.q_col + g * hd + d) * at(j, b.k_col + d)).sum();
                let bias = self
                    .bias
                    .as_ref()
                    .map_or(0.0, |t| t[g * (2 * self.len - 1) + self.len - 1 + j - i] as f64);
                dot * self.scale as f64 + bias
            })
            .collect();
        let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        s.iter_mut().for_each(|x| *x = (*x - max).exp());
        let sum: f64 = s.iter().sum();
        (0..hd)
            .map(|d| (0..self.len).map(|j| s[j] / sum * at(j, b.v_col + d)).sum())
            .collect()
    }

    /// Runs `kernel` over the row blocks `blocks`, returning [len, heads x head_dim]. The
    /// scratch starts as NaN, so any value read before it is written shows up.
    fn run(&self, kernel: &AttentionKernel, blocks: &[Range<usize>]) -> Vec<f32> {
        let width = self.heads * self.head_dim;
        let mut out = vec![f32::NAN; self.len * width];
        for rows in blocks {
            let keys = visible_keys(rows, self.len, self.window);
            let mut scratch = vec![f32::NAN; scratch_len(keys.len(), self.head_dim)];
            let mut out_rows: Vec<&mut [f32]> = out.chunks_exact_mut(width).skip(rows.start).take(rows.len()).collect();
            attend(kernel, &self.block(rows.clone()), &mut scratch, &mut out_rows).unwrap();
        }
        out
    }
}

/// Row blocks covering 0..len: blocks of 64 (as the engine cuts them) when `even`, else
/// ragged blocks of 1, 5, 37, 64, ... so groups and tiles start at odd rows.
fn blocks(len: usize, even: bool) -> Vec<Range<usize>> {
    let sizes: &[usize] = if even { &[64] } else { &[1, 5, 37, 64, 3] };
    let mut out = Vec::new();
    let (mut r0, mut k) = (0, 0);
    while r0 < len {
        let r1 = (r0 + sizes[k % sizes.len()]).min(len);
        out.push(r0..r1);
        r0 = r1;
        k += 1;
    }
    out
}

/// Every kernel this host can run, scalar first.
fn kernels() -> Vec<&'static AttentionKernel> {
    Isa::supported().into_iter().map(for_isa).collect()
}

/// The shapes: (len, head_dim, heads, scale, window, bias).
fn shapes() -> Vec<(usize, usize, usize, f32, Option<usize>, bool)> {
    let mut out = Vec::new();
    for (len, hd) in [
        (1, 8),
        (2, 32),
        (7, 64),
        (17, 8),
        (33, 32),
        (64, 32),
        (65, 64),
        (128, 32),
        (150, 256),
        (300, 64),
    ] {
        let scale = 1.0 / (hd as f32).sqrt();
        out.push((len, hd, 1, scale, None, false));
        out.push((len, hd, 3, scale, Some(len / 3), false));
        out.push((len, hd, 2, 1.0 / hd as f32, None, true));
        out.push((len, hd, 1, scale, Some(4), true));
    }
    out.push((300, 256, 3, 1.0 / 16.0, Some(100), false));
    out.push((40, 48, 2, 0.2, Some(0), false));
    out
}

/// Against direct f64 attention. Each output is a convex combination of values in [-2, 2).
/// The f32 scores carry rounding of order sqrt(head_dim) x 2^-24 x |q| |k| (< 1e-5 here,
/// scaled), the exp polynomial 3e-7 relative, the softmax sum and P V sums of up to 300
/// terms a few e-7 relative each: together well under 1e-5 absolute in practice, so 3e-5
/// leaves margin without hiding a wrong mask or bias (those move outputs by 1e-2 or more).
#[test]
fn every_kernel_matches_direct_f64_attention() {
    for (seed, (len, hd, heads, scale, window, bias)) in shapes().into_iter().enumerate() {
        let case = Case::new(seed as u64 + 1, len, hd, heads, scale, window, bias);
        for kernel in kernels() {
            for even in [true, false] {
                let got = case.run(kernel, &blocks(len, even));
                for i in 0..len {
                    for g in 0..heads {
                        let want = case.reference(i, g);
                        for (d, &w) in want.iter().enumerate() {
                            let x = got[i * heads * hd + g * hd + d] as f64;
                            assert!(
                                (x - w).abs() < 3e-5,
                                "{} len {len} hd {hd} heads {heads} window {window:?} bias {bias} row {i} head {g} dim {d}: {x} vs {w}",
                                kernel.name
                            );
                        }
                    }
                }
            }
        }
    }
}

/// SIMD against the scalar reference on the same blocks: both are f32 and differ only in
/// summation order, fused multiply-adds and the SIMD exp (a few ulp), so 1e-5 absolute on
/// outputs bounded by 2 is a wide margin.
#[test]
fn simd_kernels_match_scalar_reference() {
    for (seed, (len, hd, heads, scale, window, bias)) in shapes().into_iter().enumerate() {
        let case = Case::new(seed as u64 + 100, len, hd, heads, scale, window, bias);
        let want = case.run(&SCALAR, &blocks(len, false));
        for kernel in kernels().into_iter().skip(1) {
            let got = case.run(kernel, &blocks(len, false));
            for (at, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-5,
                    "{} len {len} hd {hd} heads {heads} window {window:?} bias {bias} at {at}: {g} vs {w}",
                    kernel.name
                );
            }
        }
    }
}

/// A one-token sequence attends only to itself: the output is its value row exactly.
#[test]
fn single_token_returns_its_value() {
    let case = Case::new(7, 1, 32, 2, 0.17, None, true);
    for kernel in kernels() {
        let got = case.run(kernel, &blocks(1, true));
        let v = &case.qkv[case.block(0..1).v_col..][..32];
        assert_eq!(&got[..32], v, "{}", kernel.name);
        assert_eq!(&got[32..], v, "{}", kernel.name);
    }
}

/// Bad arguments are errors, not panics.
#[test]
fn bad_arguments_are_errors() {
    let case = Case::new(3, 10, 8, 2, 0.3, Some(2), true);
    let k = for_isa(Isa::best());
    let mut out = vec![0f32; 10 * 16];
    let mut scratch = vec![0f32; scratch_len(10, 8)];
    let mut run = |block: AttentionBlock<'_>, scratch: &mut [f32], rows: usize| {
        let mut out_rows: Vec<&mut [f32]> = out.chunks_exact_mut(16).take(rows).collect();
        attend(k, &block, scratch, &mut out_rows)
    };
    assert!(run(case.block(0..10), &mut scratch, 10).is_ok());
    assert!(
        run(case.block(0..11), &mut scratch, 10).is_err(),
        "rows past the sequence"
    );
    assert!(run(case.block(0..10), &mut scratch, 9).is_err(), "too few output rows");
    assert!(
        run(case.block(0..10), &mut scratch[..10], 10).is_err(),
        "scratch too small"
    );
    assert!(
        run(
            AttentionBlock {
                v_col: case.stride - 4,
                ..case.block(0..10)
            },
            &mut scratch,
            10
        )
        .is_err(),
        "value past the stride"
    );
    assert!(
        run(
            AttentionBlock {
                qkv: &case.qkv[..case.qkv.len() - case.stride],
                ..case.block(0..10)
            },
            &mut scratch,
            10
        )
        .is_err(),
        "short qkv"
    );
    let short = RelativeBias {
        values: &case.bias.as_ref().unwrap()[..5],
        head_stride: 19,
        zero: 9,
    };
    assert!(
        run(
            AttentionBlock {
                bias: Some(short),
                ..case.block(0..10)
            },
            &mut scratch,
            10
        )
        .is_err(),
        "short bias"
    );
    let narrow = RelativeBias {
        values: case.bias.as_ref().unwrap(),
        head_stride: 19,
        zero: 5,
    };
    assert!(
        run(
            AttentionBlock {
                bias: Some(narrow),
                ..case.block(0..10)
            },
            &mut scratch,
            10
        )
        .is_err(),
        "bias not covering the sequence"
    );
    assert!(
        run(
            AttentionBlock {
                head_dim: 0,
                ..case.block(0..10)
            },
            &mut scratch,
            10
        )
        .is_err(),
        "zero head_dim"
    );
}

/// The bf16 kernels this host can run: the scalar references first (all bf16, scores only),
/// then the hardware ones.
fn bf16_kernels() -> Vec<&'static AttentionKernel> {
    let mut out = vec![bf16_reference(), bf16_scores_reference()];
    out.extend(hardware(bf16_for_isa));
    out.extend(hardware(bf16_scores_for_isa));
    out
}

/// Every distinct kernel `pick` gives at the levels this host supports (AMX-BF16 tiles at the
/// `amx` level and AVX-512 BF16 at `avx512`, where present).
fn hardware(pick: fn(Isa) -> Option<&'static AttentionKernel>) -> Vec<&'static AttentionKernel> {
    let mut out: Vec<&'static AttentionKernel> = Vec::new();
    for kernel in Isa::supported().into_iter().filter_map(pick) {
        if !out.iter().any(|k| k.name == kernel.name) {
            out.push(kernel);
        }
    }
    out
}

/// bf16 attention against direct f64 attention. Rounding Q and K to bf16 moves each product
/// by at most 2^-8 of itself: with |q|, |k| < 2, up to 256 terms and the scale, the scores
/// move by about 0.005 (random signs) and at most 0.09, the probabilities by that fraction of
/// themselves; rounding V and P adds 2^-8 of |v| < 2. Outputs are convex combinations of
/// values in [-2, 2), so 3e-2 absolute holds with margin, while a wrong mask, bias or pair
/// alignment moves outputs by 0.1 or more.
#[test]
fn bf16_kernels_match_direct_f64_attention() {
    for (seed, (len, hd, heads, scale, window, bias)) in shapes().into_iter().enumerate() {
        let case = Case::new(seed as u64 + 300, len, hd, heads, scale, window, bias);
        for kernel in bf16_kernels() {
            assert!(kernel.is_bf16());
            for even in [true, false] {
                let got = case.run(kernel, &blocks(len, even));
                let mut worst = 0f64;
                for i in 0..len {
                    for g in 0..heads {
                        let want = case.reference(i, g);
                        for (d, &w) in want.iter().enumerate() {
                            let x = got[i * heads * hd + g * hd + d] as f64;
                            worst = worst.max((x - w).abs());
                        }
                    }
                }
                assert!(
                    worst < 3e-2,
                    "{} len {len} hd {hd} heads {heads} window {window:?} bias {bias}: max error {worst}",
                    kernel.name
                );
            }
        }
    }
}

/// The hardware bf16 tiles against the scalar bf16 tiles on the same packed pairs. Every
/// product of two bf16 values is exact in f32, so the sums differ only by the order of the f32
/// additions (the values never reach the denormals both instructions flush): `vdpbf16ps` adds
/// in the scalar order (a few ulp apart), `tdpbf16ps` in its own. Each side of a sum of n
/// terms is within (n - 1) 2^-24 Σ|terms| of the exact sum, so twice that bounds the gap.
/// The shapes cover the AMX tiles' whole blocks of 16 pairs, up to 8 strips of 16 columns,
/// 16 rows, P V tails of 3 and 8 pairs, and the shapes they hand to AVX-512 BF16 (short rows
/// of keys among them).
#[test]
fn bf16_tiles_match_the_scalar_tiles() {
    let reference = bf16_reference().bf16.unwrap();
    let words = |rng: &mut TestRng, n: usize| -> Vec<u32> {
        rng.vec(2 * n, 2.0)
            .chunks_exact(2)
            .map(|p| bf16::to_bf16(p[0]) as u32 | (bf16::to_bf16(p[1]) as u32) << 16)
            .collect()
    };
    // Σ|products| of the pairs a[t] . b(t), t < n.
    let abs_dot = |a: &[u32], b: &dyn Fn(usize) -> u32, n: usize| -> f32 {
        let half = |w: u32, i: u32| bf16::from_bf16((w >> (16 * i)) as u16).abs();
        (0..n)
            .map(|t| half(a[t], 0) * half(b(t), 0) + half(a[t], 1) * half(b(t), 1))
            .sum()
    };
    let bound = |pairs: usize, abs: f32| 2.0 * (2 * pairs) as f32 * (f32::EPSILON / 2.0) * abs + 1e-7;
    for kernel in hardware(bf16_for_isa) {
        let simd = kernel.bf16.unwrap();
        let mut rng = TestRng(41);
        let shapes = [
            (1, 1, 16, 16),
            (3, 4, 32, 32),
            (8, 16, 48, 40),
            (13, 128, 64, 64),
            (8, 24, 16, 8),
            (16, 48, 96, 96),
            (5, 40, 32, 64),
            (9, 35, 16, 32),
            (16, 16, 80, 16),
            (8, 32, 64, 32),
            (7, 64, 128, 48),
        ];
        for (rows, pairs, cols, head_dim) in shapes {
            let q = words(&mut rng, rows * pairs);
            let k = words(&mut rng, pairs * cols);
            let (mut a, mut b) = (vec![0f32; rows * cols], vec![0f32; rows * cols]);
            (simd.scores)(&q, pairs, rows, &k, cols, cols, pairs, 0.3, &mut a, cols);
            (reference.scores)(&q, pairs, rows, &k, cols, cols, pairs, 0.3, &mut b, cols);
            for r in 0..rows {
                for c in 0..cols {
                    let (x, y) = (a[r * cols + c], b[r * cols + c]);
                    let abs = 0.3 * abs_dot(&q[r * pairs..], &|t| k[t * cols + c], pairs);
                    assert!(
                        (x - y).abs() <= bound(pairs, abs),
                        "{}: scores {rows}x{pairs}x{cols} [{r}][{c}]: {x} vs {y}",
                        kernel.name
                    );
                }
            }
            let v = words(&mut rng, pairs * head_dim);
            let (mut a, mut b) = (vec![0f32; rows * head_dim], vec![0f32; rows * head_dim]);
            {
                let mut ra: Vec<&mut [f32]> = a.chunks_exact_mut(head_dim).collect();
                let mut rb: Vec<&mut [f32]> = b.chunks_exact_mut(head_dim).collect();
                (simd.probs_values)(&q, pairs, &v, head_dim, pairs, head_dim, &mut ra, 0);
                (reference.probs_values)(&q, pairs, &v, head_dim, pairs, head_dim, &mut rb, 0);
            }
            for r in 0..rows {
                for e in 0..head_dim {
                    let (x, y) = (a[r * head_dim + e], b[r * head_dim + e]);
                    let abs = abs_dot(&q[r * pairs..], &|t| v[t * head_dim + e], pairs);
                    assert!(
                        (x - y).abs() <= bound(pairs, abs),
                        "{}: pv {rows}x{pairs}x{head_dim} [{r}][{e}]: {x} vs {y}",
                        kernel.name
                    );
                }
            }
        }
    }
}

/// A one-token sequence attends only to itself: the bf16 output is its value row rounded to
/// bf16, or the value row itself where only the scores are bf16.
#[test]
fn bf16_single_token_returns_its_rounded_value() {
    let case = Case::new(8, 1, 32, 2, 0.17, None, true);
    for kernel in bf16_kernels() {
        let got = case.run(kernel, &blocks(1, true));
        let v = &case.qkv[case.block(0..1).v_col..][..32];
        let want: Vec<f32> = if kernel.rounds_values() {
            v.iter().map(|&x| bf16::from_bf16(bf16::to_bf16(x))).collect()
        } else {
            v.to_vec()
        };
        assert_eq!(&got[..32], want.as_slice(), "{}", kernel.name);
    }
}

/// Scores on bf16 pairs with P V in f32: closer to f64 attention than all-bf16 on the same
/// inputs, since only Q and K are rounded (2^-9 of each, moving the scores by about 0.005 at
/// these sizes: see the bound above), and it agrees with its scalar reference to 1e-5 (the same
/// rounded pairs summed in the same order, then the f32 P V tiles of f32 attention).
#[test]
fn bf16_scores_kernels_match_their_reference() {
    for kernel in hardware(bf16_scores_for_isa) {
        bf16_scores_kernel_matches_its_reference(kernel);
    }
}

fn bf16_scores_kernel_matches_its_reference(kernel: &AttentionKernel) {
    assert!(kernel.is_bf16() && !kernel.rounds_values());
    // Split-value P V (`bf16.rs`) leaves out at most 3 x 2^-18 of Σ_j p_j |v_j| <= max |v| = 2
    // per output against the reference's f32 P V.
    let split = if kernel.bf16.unwrap().split.is_some() {
        3.0 * 2f32.powi(-18) * 2.0
    } else {
        0.0
    };
    for (seed, (len, hd, heads, scale, window, bias)) in shapes().into_iter().enumerate() {
        let case = Case::new(seed as u64 + 500, len, hd, heads, scale, window, bias);
        let want = case.run(bf16_scores_reference(), &blocks(len, true));
        let got = case.run(kernel, &blocks(len, false));
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(
            worst < 1e-5 + split,
            "{} len {len} hd {hd} heads {heads} window {window:?}: max difference {worst}",
            kernel.name
        );
    }
}

/// The hardware conversions against the scalar ones: rounding to nearest even is exact, so
/// the words are equal (values here are never denormal, which the hardware flushes).
#[test]
fn bf16_conversions_match_the_scalar_ones() {
    for kernel in hardware(bf16_for_isa) {
        bf16_conversions_match(kernel);
    }
}

fn bf16_conversions_match(kernel: &AttentionKernel) {
    let (simd, reference) = (kernel.bf16.unwrap(), bf16_reference().bf16.unwrap());
    let mut rng = TestRng(43);
    for len in [1, 2, 15, 16, 31, 32, 33, 64, 77, 256] {
        let mut src = rng.vec(len, 3.0);
        src[0] = 1.0 + 1.0 / 256.0; // a tie: rounds to even (1.0)
        let (mut a, mut b) = (vec![7u32; len.div_ceil(2)], vec![9u32; len.div_ceil(2)]);
        (simd.round_pairs)(&src, &mut a);
        (reference.round_pairs)(&src, &mut b);
        assert_eq!(a, b, "round_pairs {len}");
        let other = rng.vec(len, 3.0);
        for second in [Some(other.as_slice()), None] {
            let (mut a, mut b) = (vec![7u32; len], vec![9u32; len]);
            (simd.interleave)(&src, second, &mut a);
            (reference.interleave)(&src, second, &mut b);
            assert_eq!(a, b, "interleave {len} {}", second.is_some());
        }
    }
    assert_eq!(bf16::to_bf16(1.0 + 1.0 / 256.0), bf16::to_bf16(1.0));
    assert_eq!(bf16::to_bf16(1.0 + 3.0 / 256.0), bf16::to_bf16(1.0 + 4.0 / 256.0));
}

/// The fused softmax-to-pairs step of each bf16 kernel gives the bits of its vector family's
/// softmax followed by its rounding to pairs: ragged lengths, a row far below its maximum
/// (entries under the floor become 0), and a row of -inf (all zeros).
#[test]
fn softmax_pairs_match_softmax_then_rounding() {
    let mut rng = TestRng(47);
    let mut kernels: Vec<&AttentionKernel> = vec![bf16_reference()];
    kernels.extend(hardware(bf16_for_isa));
    for kernel in kernels {
        let tiles = kernel.bf16.unwrap();
        for len in [1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 256, 257] {
            let mut rows = vec![rng.vec(len, 8.0), rng.vec(len, 200.0), vec![f32::NEG_INFINITY; len]];
            rows[1][len / 2] = 150.0;
            for row in rows {
                let mut want_row = row.clone();
                vector::softmax_one(kernel.vector, &mut want_row);
                let mut want = vec![7u32; len.div_ceil(2)];
                (tiles.round_pairs)(&want_row, &mut want);
                let mut got_row = row.clone();
                let mut got = vec![9u32; len.div_ceil(2)];
                (tiles.softmax_pairs)(&mut got_row, &mut got);
                assert_eq!(got, want, "{} len {len}", kernel.name);
            }
        }
    }
}

/// The split-value tiles (`bf16.rs`, AMX-BF16): the conversions give the scalar forms' words
/// bit for bit, and P V is within the split's bound of exact f64 P V on the unsplit f32 values:
/// 3 x 2^-18 of Σ|p||v| for the parts left out, plus the f32 sums' order (n u Σ|terms| for the
/// 6 products per key pair).
#[test]
fn split_tiles_match_f64_and_their_scalar_forms() {
    let reference = &bf16::SCALAR_SPLIT;
    for kernel in hardware(bf16_scores_for_isa) {
        let Some(split) = kernel.bf16.unwrap().split else {
            continue;
        };
        let mut rng = TestRng(53);
        for len in [1, 2, 15, 16, 31, 32, 33, 64, 77, 256] {
            let src = rng.vec(len, 3.0);
            let words = len.div_ceil(2);
            let (mut a, mut b) = (
                (vec![7u32; words], vec![7u32; words]),
                (vec![9u32; words], vec![9u32; words]),
            );
            (split.split_pairs)(&src, &mut a.0, &mut a.1);
            (reference.split_pairs)(&src, &mut b.0, &mut b.1);
            assert_eq!(a, b, "split_pairs {len}");
            let other = rng.vec(len, 3.0);
            for second in [Some(other.as_slice()), None] {
                let (mut a, mut b) = ((vec![7u32; len], vec![7u32; len]), (vec![9u32; len], vec![9u32; len]));
                (split.interleave)(&src, second, &mut a.0, &mut a.1);
                (reference.interleave)(&src, second, &mut b.0, &mut b.1);
                assert_eq!(a, b, "interleave_split {len} {}", second.is_some());
            }
        }
        // (rows, key pairs, head width): tails of 1-15 pairs, no whole block, 1-4 strips.
        for (rows, pairs, hd) in [
            (1, 32, 16),
            (16, 32, 256),
            (7, 40, 48),
            (16, 100, 64),
            (3, 17, 32),
            (16, 5, 16),
            (12, 64, 80),
        ] {
            let keys = 2 * pairs;
            let p: Vec<f32> = rng.vec(rows * keys, 1.0).iter().map(|x| x.abs()).collect();
            let v = rng.vec(keys * hd, 2.0);
            let (mut p_hi, mut p_lo) = (vec![0u32; rows * pairs], vec![0u32; rows * pairs]);
            for r in 0..rows {
                let (hi, lo) = (&mut p_hi[r * pairs..][..pairs], &mut p_lo[r * pairs..][..pairs]);
                (reference.split_pairs)(&p[r * keys..][..keys], hi, lo);
            }
            let (mut v_hi, mut v_lo) = (vec![0u32; pairs * hd], vec![0u32; pairs * hd]);
            for t in 0..pairs {
                let (hi, lo) = (&mut v_hi[t * hd..][..hd], &mut v_lo[t * hd..][..hd]);
                (reference.interleave)(&v[2 * t * hd..][..hd], Some(&v[(2 * t + 1) * hd..][..hd]), hi, lo);
            }
            let col = 3;
            let run = |f: bf16::ProbsValuesSplitFn| {
                let mut out = vec![vec![f32::NAN; col + hd + 2]; rows];
                let mut rows_out: Vec<&mut [f32]> = out.iter_mut().map(|r| r.as_mut_slice()).collect();
                f(&p_hi, &p_lo, pairs, &v_hi, &v_lo, hd, pairs, hd, &mut rows_out, col);
                out
            };
            let (got, scalar) = (run(split.probs_values), run(reference.probs_values));
            for r in 0..rows {
                assert!(
                    got[r][col + hd].is_nan() && got[r][col - 1].is_nan(),
                    "{}: writes outside its columns",
                    kernel.name
                );
                for e in 0..hd {
                    let (exact, abs) = (0..keys).fold((0f64, 0f64), |(s, a), j| {
                        let term = f64::from(p[r * keys + j]) * f64::from(v[j * hd + e]);
                        (s + term, a + term.abs())
                    });
                    let order = (6 * pairs) as f64 * f64::from(f32::EPSILON / 2.0) * abs;
                    let bound = 3.0 * 2f64.powi(-18) * abs + order + 1e-7;
                    let what = format!("{} split {rows}x{pairs}x{hd} [{r}][{e}]", kernel.name);
                    assert!(
                        (f64::from(got[r][col + e]) - exact).abs() <= bound,
                        "{what}: {} vs {exact}",
                        got[r][col + e]
                    );
                    assert!(
                        (got[r][col + e] - scalar[r][col + e]).abs() as f64 <= 2.0 * order + 1e-7,
                        "{what}: vs scalar"
                    );
                }
            }
        }
    }
}
