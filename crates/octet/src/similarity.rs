//! Cosine similarity between two embeddings: the one definition the CLI (`octet similarity`,
//! `octet search`, the quality report) and the tests share.

/// Cosine similarity of `a` and `b`, accumulated in f64 so that long vectors of f32 keep their
/// precision. A vector that is all zeros has no direction: its cosine with anything is 0.
///
/// Panics if the lengths differ (comparing vectors of two different models is a caller's bug).
///
/// ```
/// let c = octet::similarity::cosine(&[1.0, 0.0], &[1.0, 1.0]);
/// assert!((c - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
/// ```
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "cosine of vectors of different lengths");
    let (mut dot, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        dot / (aa.sqrt() * bb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn parallel_opposite_orthogonal_and_zero_vectors() {
        assert!((cosine(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0, 2.0], &[-1.0, -2.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
    }

    #[test]
    fn keeps_precision_where_f32_accumulation_would_not() {
        // 100,000 equal components: an f32 sum of squares drifts; f64 gives 1 to 1e-12.
        let v = vec![0.1f32; 100_000];
        assert!((cosine(&v, &v) - 1.0).abs() < 1e-12);
    }

    #[test]
    #[should_panic(expected = "different lengths")]
    fn refuses_vectors_of_different_lengths() {
        cosine(&[1.0], &[1.0, 2.0]);
    }
}
