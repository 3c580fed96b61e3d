//! Tests of the position-bias inversion.

use super::*;

fn folded(table: &[f32], heads: usize, n: usize, buckets: usize, max_distance: usize) -> Vec<f32> {
    let mut out = vec![0f32; heads * n * n];
    for h in 0..heads {
        for i in 0..n {
            for j in 0..n {
                let b = relative_position_bucket(j as i64 - i as i64, buckets, max_distance);
                out[(h * n + i) * n + j] = table[b * heads + h];
            }
        }
    }
    out
}

#[test]
fn bucket_table_inverts_the_folding() {
    for (buckets, max_distance, n) in [(32, 128, 64), (16, 24, 64), (32, 128, 8), (8, 16, 40)] {
        let heads = 3;
        let table: Vec<f32> = (0..buckets * heads).map(|v| (v as f32 * 0.37).sin()).collect();
        let values = folded(&table, heads, n, buckets, max_distance);
        let found = bucket_table(&values, heads, n).unwrap();
        // Whatever bucketing was found, it must reproduce the folded constant exactly.
        assert_eq!(
            folded(&found.table, heads, n, found.num_buckets, found.max_distance),
            values,
            "({buckets}, {max_distance}) over {n} positions"
        );
        if (buckets, max_distance) == (32, 128) {
            assert_eq!((found.num_buckets, found.max_distance), (32, 128));
        }
    }
}

#[test]
fn a_bias_that_is_not_relative_is_refused() {
    let (heads, n) = (2, 5);
    let values: Vec<f32> = (0..heads * n * n).map(|v| v as f32).collect();
    let err = bucket_table(&values, heads, n).unwrap_err().to_string();
    assert!(err.contains("not a relative-position bias"), "{err}");
    assert!(bucket_table(&values[1..], heads, n).is_err());
    assert!(bucket_table(&[], 0, 0).is_err());
}
