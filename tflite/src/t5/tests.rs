//! Tests of the position-bias inversion.

use super::*;
use octet::model::t5::relative_position_bucket;

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

/// With T5's default bucketing the window reaches as far as the observed log buckets do, and
/// every relative position inside it uses a bucket the folded constant showed.
#[test]
fn the_window_extends_as_far_as_the_buckets_allow() {
    let heads = 2;
    let table: Vec<f32> = (0..32 * heads).map(|v| 1.0 + v as f32).collect();
    // At 64 tokens (the browser's model) distance 64 starts a new log bucket: no extension.
    assert_eq!(
        bucket_table(&folded(&table, heads, 64, 32, 128), heads, 64)
            .unwrap()
            .window,
        64
    );
    // At 40 tokens, distances up to 45 share the bucket of 39.
    let found = bucket_table(&folded(&table, heads, 40, 32, 128), heads, 40).unwrap();
    assert_eq!((found.num_buckets, found.max_distance), (32, 128));
    assert_eq!(found.window, 46);
    for r in -(found.window as i64 - 1)..found.window as i64 {
        let b = relative_position_bucket(r, 32, 128);
        assert_eq!(found.table[b * heads], table[b * heads], "relative {r}");
    }
    let next = found.window as i64;
    let b = relative_position_bucket(next, 32, 128).max(relative_position_bucket(-next, 32, 128));
    assert!(found.table[b * heads] == 0.0 || found.table[relative_position_bucket(-next, 32, 128) * heads] == 0.0);
    // Another bucketing is not extended.
    let found = bucket_table(&folded(&table[..16 * heads], heads, 40, 16, 24), heads, 40).unwrap();
    if (found.num_buckets, found.max_distance) != (32, 128) {
        assert_eq!(found.window, 40);
    }
}
