//! Stores one logical tensor in the precision its recipe chooses: f32 or int8 packed panels
//! for linear weights (octet-kernels layouts) or plain f16, f32, f16, per-row int8 or per-row
//! 7-bit (`u7`) or 6-bit (`u6`) for embedding tables. Int8 linear weights are rounded to
//! nearest, or by [`super::gptq`] where the converter calibrated them.

use super::recipe::{Precision, Recipe};
use super::{Logical, Planned};
use anyhow::Result;
use octet::format::{ModelWriter, QuantParam};
use octet_kernels::{f32 as kf32, gather, int8};

/// Quantizes a [rows, dim] table per row, asymmetric, to the integers `q_min..=q_max`:
/// real = (q - zero_point) x scale, with the row's range widened to include 0 so that 0 is
/// exact, scale = range / (q_max - q_min) (1 for an all-zero row). Returns (q, scales,
/// zero_points).
fn quantize_rows(data: &[f32], rows: usize, dim: usize, q_min: i32, q_max: i32) -> (Vec<i32>, Vec<f32>, Vec<i32>) {
    let mut q = vec![0i32; rows * dim];
    let mut scales = vec![0f32; rows];
    let mut zero_points = vec![0i32; rows];
    let steps = (q_max - q_min) as f32;
    for r in 0..rows {
        let row = &data[r * dim..(r + 1) * dim];
        let lo = row.iter().cloned().fold(0f32, f32::min);
        let hi = row.iter().cloned().fold(0f32, f32::max);
        let scale = if hi > lo { (hi - lo) / steps } else { 1.0 };
        let zp = (q_min as f32 - lo / scale).round().clamp(q_min as f32, q_max as f32) as i32;
        for (dst, &v) in q[r * dim..(r + 1) * dim].iter_mut().zip(row) {
            *dst = ((v / scale).round() as i32 + zp).clamp(q_min, q_max);
        }
        scales[r] = scale;
        zero_points[r] = zp;
    }
    (q, scales, zero_points)
}

/// Quantizes a [rows, dim] table per row, asymmetric: real = (q - zero_point) x scale, with
/// q in [-128, 127]. Returns (q, scales, zero_points).
pub fn quantize_table_per_row(data: &[f32], rows: usize, dim: usize) -> (Vec<i8>, Vec<f32>, Vec<i32>) {
    let (q, scales, zero_points) = quantize_rows(data, rows, dim, -128, 127);
    (q.into_iter().map(|v| v as i8).collect(), scales, zero_points)
}

/// Quantizes a [rows, dim] table per row to 6 bits, asymmetric: real = (q - zero_point) x
/// scale, with q in [0, 63]. Returns (q, one value per byte, not yet packed; scales;
/// zero_points, in 0..=63).
pub fn quantize_table_per_row_u6(data: &[f32], rows: usize, dim: usize) -> (Vec<u8>, Vec<f32>, Vec<i32>) {
    let (q, scales, zero_points) = quantize_rows(data, rows, dim, 0, gather::U6_MAX as i32);
    (q.into_iter().map(|v| v as u8).collect(), scales, zero_points)
}

/// Quantizes a [rows, dim] table per row to 7 bits, asymmetric: real = (q - zero_point) x
/// scale, with q in [0, 127]. Returns (q, one value per byte, not yet packed; scales;
/// zero_points, in 0..=127).
pub fn quantize_table_per_row_u7(data: &[f32], rows: usize, dim: usize) -> (Vec<u8>, Vec<f32>, Vec<i32>) {
    let (q, scales, zero_points) = quantize_rows(data, rows, dim, 0, gather::U7_MAX as i32);
    (q.into_iter().map(|v| v as u8).collect(), scales, zero_points)
}

/// Rounds to IEEE half precision (round to nearest even; beyond ±65504 becomes infinite,
/// which no trained weight reaches).
fn to_f16(data: &[f32]) -> Vec<half::f16> {
    data.iter().map(|&v| half::f16::from_f32(v)).collect()
}

/// Adds one tensor to the writer.
pub fn store(writer: &mut ModelWriter, recipe: &Recipe, planned: Planned) -> Result<()> {
    store_calibrated(writer, recipe, planned, None)
}

/// Adds one tensor to the writer; an int8 linear layer given `codes` (int8 codes and
/// per-channel scales, from [`super::gptq`]) stores them instead of rounding its weights to nearest.
pub fn store_calibrated(
    writer: &mut ModelWriter,
    recipe: &Recipe,
    planned: Planned,
    codes: Option<(Vec<i8>, Vec<f32>)>,
) -> Result<()> {
    let name = planned.name;
    match planned.tensor {
        Logical::Vector { data, shape } => writer.add_f32(&name, &shape, &data)?,
        Logical::Table { data, rows, dim, kind } => match recipe.table_precision(&name, kind) {
            Precision::F32 => writer.add_f32(&name, &[rows, dim], &data)?,
            Precision::F16 => writer.add_f16(&name, &[rows, dim], &to_f16(&data))?,
            Precision::I8 => {
                let (q, scales, zero_points) = quantize_table_per_row(&data, rows, dim);
                writer.add_i8_table(
                    &name,
                    &[rows, dim],
                    &q,
                    QuantParam::PerChannel(&scales),
                    QuantParam::PerChannel(&zero_points),
                    Some(0),
                )?;
            }
            Precision::U6 => {
                let (q, scales, zero_points) = quantize_table_per_row_u6(&data, rows, dim);
                let packed = gather::pack_u6(&q, rows, dim)?;
                writer.add_u6_table(
                    &name,
                    rows,
                    dim,
                    &packed,
                    QuantParam::PerChannel(&scales),
                    QuantParam::PerChannel(&zero_points),
                )?;
            }
            Precision::U7 => {
                let (q, scales, zero_points) = quantize_table_per_row_u7(&data, rows, dim);
                let packed = gather::pack_u7(&q, rows, dim)?;
                writer.add_u7_table(
                    &name,
                    rows,
                    dim,
                    &packed,
                    QuantParam::PerChannel(&scales),
                    QuantParam::PerChannel(&zero_points),
                )?;
            }
        },
        Logical::Linear {
            weight,
            n,
            k,
            bias,
            after_norm,
        } => {
            let weight_name = format!("{name}.weight");
            match recipe.linear_precision(&name) {
                Precision::U6 | Precision::U7 => {
                    anyhow::bail!("{name}: 6- and 7-bit storage is for embedding tables, not linear layers")
                }
                Precision::F32 => {
                    let layout = kf32::PackedF32Layout::new(n, k);
                    let mut packed = vec![0f32; layout.len()];
                    kf32::pack_nk(&weight, n, k, k, &mut packed)?;
                    writer.add_packed_f32(&weight_name, n, k, &packed)?;
                }
                // Plain [n, k]: the engine packs it to f32 panels when it opens the model.
                Precision::F16 => writer.add_f16(&weight_name, &[n, k], &to_f16(&weight))?,
                Precision::I8 => {
                    let (q, scales) = codes
                        .filter(|(q, s)| q.len() == n * k && s.len() == n)
                        .unwrap_or_else(|| int8::quantize_weights_per_channel(&weight, n, k));
                    let k_group = recipe.k_group_for(&name, k, after_norm);
                    let packed = int8::pack_weights(&q, n, k, &scales, k_group)?;
                    writer.add_packed_i8(
                        &weight_name,
                        n,
                        k,
                        k_group,
                        &packed.data,
                        &packed.col_scales,
                        &packed.col_sums,
                    )?;
                }
            }
            if let Some(b) = bias {
                writer.add_f32(&format!("{name}.bias"), &[n], &b)?;
            }
        }
        Logical::QuantizedLinear { q, scales, n, k, bias } => {
            let k_group = recipe.k_group.filter(|&g| g < k);
            let packed = int8::pack_weights(&q, n, k, &scales, k_group)?;
            writer.add_packed_i8(
                &format!("{name}.weight"),
                n,
                k,
                k_group,
                &packed.data,
                &packed.col_scales,
                &packed.col_sums,
            )?;
            if let Some(b) = bias {
                writer.add_f32(&format!("{name}.bias"), &[n], &b)?;
            }
        }
        Logical::QuantizedTable {
            q,
            rows,
            dim,
            scales,
            zero_points,
        } => {
            let per_row = scales.len() > 1 || zero_points.len() > 1;
            let (scale, zero_point) = if per_row {
                (
                    QuantParam::PerChannel(&scales[..]),
                    QuantParam::PerChannel(&zero_points[..]),
                )
            } else {
                let (Some(&s), Some(&z)) = (scales.first(), zero_points.first()) else {
                    anyhow::bail!("{name}: no scale or zero point")
                };
                (QuantParam::PerTensor(s), QuantParam::PerTensor(z))
            };
            writer.add_i8_table(&name, &[rows, dim], &q, scale, zero_point, per_row.then_some(0))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_quantization_round_trips_within_half_a_step() {
        let (rows, dim) = (3, 7);
        let data: Vec<f32> = (0..rows * dim)
            .map(|i| (i as f32 * 0.37).sin() * (1 + i / dim) as f32)
            .collect();
        let (q, scales, zps) = quantize_table_per_row(&data, rows, dim);
        for r in 0..rows {
            for c in 0..dim {
                let real = (q[r * dim + c] as i32 - zps[r]) as f32 * scales[r];
                assert!((real - data[r * dim + c]).abs() <= scales[r] * 0.5 + 1e-6);
            }
        }
        let (_, s, _) = quantize_table_per_row(&[0.0; 4], 1, 4);
        assert_eq!(s[0], 1.0);
    }

    #[test]
    fn u6_table_quantization_round_trips_within_half_a_step() {
        let (rows, dim) = (4, 9);
        let data: Vec<f32> = (0..rows * dim)
            .map(|i| (i as f32 * 0.61).cos() * (1 + i / dim) as f32 - 0.3)
            .collect();
        let (q, scales, zps) = quantize_table_per_row_u6(&data, rows, dim);
        assert!(q.iter().all(|&v| v <= 63) && zps.iter().all(|&z| (0..=63).contains(&z)));
        for r in 0..rows {
            // 63 steps span the row's range (which includes 0).
            let row = &data[r * dim..(r + 1) * dim];
            let range = row.iter().cloned().fold(0f32, f32::max) - row.iter().cloned().fold(0f32, f32::min);
            assert!((scales[r] * 63.0 - range).abs() <= 1e-5 * range);
            for c in 0..dim {
                let real = (q[r * dim + c] as i32 - zps[r]) as f32 * scales[r];
                assert!((real - data[r * dim + c]).abs() <= scales[r] * 0.5 + 1e-6);
            }
        }
        // An all-positive row: zero point 0, the minimum value at q = 0 after widening to 0.
        let (q, _, z) = quantize_table_per_row_u6(&[1.0, 3.0, 4.0], 1, 3);
        assert_eq!((q, z), (vec![16, 47, 63], vec![0]));
    }

    #[test]
    fn u7_table_quantization_round_trips_within_half_a_step() {
        let (rows, dim) = (4, 11);
        let data: Vec<f32> = (0..rows * dim)
            .map(|i| (i as f32 * 0.43).sin() * (1 + i / dim) as f32 + 0.2)
            .collect();
        let (q, scales, zps) = quantize_table_per_row_u7(&data, rows, dim);
        assert!(q.iter().all(|&v| v <= 127) && zps.iter().all(|&z| (0..=127).contains(&z)));
        for r in 0..rows {
            // 127 steps span the row's range (which includes 0).
            let row = &data[r * dim..(r + 1) * dim];
            let range = row.iter().cloned().fold(0f32, f32::max) - row.iter().cloned().fold(0f32, f32::min);
            assert!((scales[r] * 127.0 - range).abs() <= 1e-5 * range);
            for c in 0..dim {
                let real = (q[r * dim + c] as i32 - zps[r]) as f32 * scales[r];
                assert!((real - data[r * dim + c]).abs() <= scales[r] * 0.5 + 1e-6);
            }
        }
        // An all-negative row: zero point 127, the maximum value at q = 127 after widening to 0.
        let (q, _, z) = quantize_table_per_row_u7(&[-1.0, -3.0, -4.0], 1, 3);
        assert_eq!((q, z), (vec![95, 32, 0], vec![127]));
        // The packed table unpacks to the same codes.
        let (q, _, _) = quantize_table_per_row_u7(&data, rows, dim);
        let packed = gather::pack_u7(&q, rows, dim).unwrap();
        assert_eq!(packed.len(), rows * 14);
        assert_eq!(gather::unpack_u7(&packed, rows, dim).unwrap(), q);
    }
}
