//! The comparisons behind the quality report: cosine between two embeddings of one text, a
//! percentile, and how many of each text's nearest neighbours two models agree on.

pub use octet::similarity::cosine;

/// The `p`-th percentile (0..=100) of `values`, nearest rank below: the value at index
/// `floor(p / 100 x (n - 1))` of the sorted values. NaN for no values.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = ((p / 100.0) * (sorted.len() - 1) as f64).floor() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// For each vector, the indices of its `k` nearest others by cosine, best first (ties: lower
/// index first). `k` is capped at `n - 1`.
pub fn nearest(vectors: &[Vec<f32>], k: usize) -> Vec<Vec<usize>> {
    let n = vectors.len();
    let k = k.min(n.saturating_sub(1));
    let norms: Vec<f64> = vectors
        .iter()
        .map(|v| v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt())
        .collect();
    (0..n)
        .map(|i| {
            let mut scored: Vec<(f64, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let dot: f64 = vectors[i]
                        .iter()
                        .zip(&vectors[j])
                        .map(|(&x, &y)| x as f64 * y as f64)
                        .sum();
                    let denom = norms[i] * norms[j];
                    (if denom == 0.0 { 0.0 } else { dot / denom }, j)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            scored.into_iter().take(k).map(|(_, j)| j).collect()
        })
        .collect()
}

/// Mean over texts of the fraction of `a`'s neighbours that are also among `b`'s (lists of the
/// same length per text). NaN when there are no neighbours to compare.
pub fn neighbour_overlap(a: &[Vec<usize>], b: &[Vec<usize>]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let fractions: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(x, _)| !x.is_empty())
        .map(|(x, y)| x.iter().filter(|j| y.contains(j)).count() as f64 / x.len() as f64)
        .collect();
    if fractions.is_empty() {
        f64::NAN
    } else {
        fractions.iter().sum::<f64>() / fractions.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_orthogonal_and_zero_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (0..101).map(|i| i as f64).rev().collect();
        assert_eq!(percentile(&v, 0.0), 0.0);
        assert_eq!(percentile(&v, 1.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!(percentile(&[], 1.0).is_nan());
    }

    #[test]
    fn neighbours_and_overlap() {
        // Points on a line: 0, 1 and 2 point one way, 3 the other.
        let v = vec![vec![1.0, 0.0], vec![1.0, 0.1], vec![1.0, 0.3], vec![-1.0, 0.0]];
        let near = nearest(&v, 2);
        assert_eq!(near[0], vec![1, 2]);
        // 3 points the other way: the least opposed (2, then 1) are its nearest.
        assert_eq!(near[3], vec![2, 1]);
        assert_eq!(nearest(&v, 10)[0].len(), 3);
        assert_eq!(neighbour_overlap(&near, &near), 1.0);
        let other = vec![vec![1, 3], vec![0, 2], vec![1, 0], vec![0, 1]];
        // Text 0 shares 1 of 2, text 1 shares 2, text 2 shares 2, text 3 shares 1.
        assert!((neighbour_overlap(&near, &other) - 0.75).abs() < 1e-12);
        assert!(neighbour_overlap(&[vec![]], &[vec![]]).is_nan());
    }
}
