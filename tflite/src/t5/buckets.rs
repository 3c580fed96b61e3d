//! The inversion of the relative-position bias the converter folds into one [heads, n, n]
//! constant (see [`super`]'s docs): the engine's [buckets, heads] table and the window it allows.

use crate::graph::unrecognised;
use crate::TfliteError;
use octet::model::t5::relative_position_bucket;

/// The [buckets, heads] table behind a folded relative-position bias.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketTable {
    pub num_buckets: usize,
    pub max_distance: usize,
    /// [num_buckets, heads], row-major.
    pub table: Vec<f32>,
    /// The longest sequence whose every relative position falls in a bucket the folded
    /// constant showed: n, or more when the bucketing is T5's default (32 buckets up to 128)
    /// and the log buckets the last distances fall in reach further (up to [`MAX_WINDOW`]).
    pub window: usize,
}

/// The longest window [`BucketTable::window`] extends to (T5's usual 512 tokens).
pub const MAX_WINDOW: usize = 512;

/// Inverts the converter's folding of T5's position bias: `values` [heads, n, n] (query rows,
/// key columns). Errors when the bias is not a function of `key - query`, or no T5 bucketing
/// fits it (an exact bucket per distance always does, so that means a non-Toeplitz bias).
/// Tries T5's defaults (32, 128) first, then other common settings, then one bucket per
/// relative position.
pub fn bucket_table(values: &[f32], heads: usize, n: usize) -> Result<BucketTable, TfliteError> {
    if n == 0 || heads == 0 || values.len() != heads * n * n {
        return Err(unrecognised(format!(
            "position bias of {} values for {heads} heads and {n} positions",
            values.len()
        )));
    }
    // by_relative[(r + n - 1) * heads + h]: the bias of head h at relative position r.
    let width = 2 * n - 1;
    let mut by_relative = vec![f32::NAN; width * heads];
    for h in 0..heads {
        for i in 0..n {
            for j in 0..n {
                let v = values[(h * n + i) * n + j];
                let slot = &mut by_relative[(j + n - 1 - i) * heads + h];
                if slot.is_nan() {
                    *slot = v;
                } else if slot.to_bits() != v.to_bits() {
                    return Err(unrecognised(format!(
                        "the attention bias of head {h} differs along the diagonal at query {i}, key {j}: not a relative-position bias"
                    )));
                }
            }
        }
    }
    let mut candidates = vec![(32, 128)];
    for buckets in [8usize, 16, 32, 64, 128] {
        for max_distance in [16usize, 20, 24, 32, 48, 64, 96, 128, 256, 512, 1024] {
            if max_distance > buckets / 4 && !candidates.contains(&(buckets, max_distance)) {
                candidates.push((buckets, max_distance));
            }
        }
    }
    // One bucket per relative position: half = 2n, exact below n, so every |r| < n is exact.
    candidates.push((4 * n, n + 1));
    'candidate: for (num_buckets, max_distance) in candidates {
        let mut table = vec![f32::NAN; num_buckets * heads];
        for slot in 0..width {
            let relative = slot as i64 - (n as i64 - 1);
            let bucket = relative_position_bucket(relative, num_buckets, max_distance);
            for h in 0..heads {
                let v = by_relative[slot * heads + h];
                let cell = &mut table[bucket * heads + h];
                if cell.is_nan() {
                    *cell = v;
                } else if cell.to_bits() != v.to_bits() {
                    continue 'candidate;
                }
            }
        }
        let known =
            |relative: i64| !table[relative_position_bucket(relative, num_buckets, max_distance) * heads].is_nan();
        let mut window = n;
        // Only T5's own bucketing is trusted beyond the data: another one that fits the folded
        // constant may bucket longer distances differently from the model.
        if (num_buckets, max_distance) == (32, 128) {
            while window < MAX_WINDOW && known(window as i64) && known(-(window as i64)) {
                window += 1;
            }
        }
        table.iter_mut().filter(|v| v.is_nan()).for_each(|v| *v = 0.0);
        return Ok(BucketTable {
            num_buckets,
            max_distance,
            table,
            window,
        });
    }
    Err(unrecognised("no T5 bucketing reproduces the position bias"))
}
