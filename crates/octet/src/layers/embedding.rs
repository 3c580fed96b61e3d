//! [`Embedding`]: a token-embedding (or position / token-type) table and its gather.
//!
//! The table is f32, f16, int8, 7-bit `u7` or 6-bit `u6` (the last three with a scale and zero
//! point per row or per tensor), used in place from the map; the gather kernel dequantizes the
//! selected rows on the fly, `(q - zero_point) x scale`.

use super::stored::{Stored, StoredParam};
use crate::error::{Error, Result};
use crate::format::{Dtype, I8Quant, ModelFile, QuantParam};
use octet_kernels::gather::{self, PerRowOrTensor, Table};
use octet_kernels::kernels;
use std::sync::Arc;

/// Where the table's values are, by stored type.
enum StoredTable {
    F32(Stored<f32>),
    F16(Stored<half::f16>),
    I8 {
        data: Stored<i8>,
        scale: StoredParam<f32>,
        zero_point: StoredParam<i32>,
    },
    U6 {
        data: Stored<u8>,
        scale: StoredParam<f32>,
        zero_point: StoredParam<i32>,
    },
    U7 {
        data: Stored<u8>,
        scale: StoredParam<f32>,
        zero_point: StoredParam<i32>,
    },
}

/// A token-embedding (or position / type) table of shape [rows, dim].
pub struct Embedding {
    table: StoredTable,
    /// Rows in the table.
    pub rows: usize,
    /// Width of each row.
    pub dim: usize,
    /// Stored rows per logical row: a table may be stored as [rows x blocks, dim / blocks], so
    /// that a quantized table gets one scale and zero point per block of a row instead of one
    /// per row (the converter does this for EmbeddingGemma, whose rows have outliers).
    blocks: usize,
}

impl Embedding {
    /// Binds `name` as an f32, f16, int8, u7 or u6 (the last three with scale and zero point)
    /// table of [rows, dim]. The table may also be stored as [rows x b, dim / b] for a whole
    /// number of blocks b.
    pub fn load(
        file: &Arc<ModelFile>,
        arch: &str,
        name: &str,
        logical_rows: usize,
        logical_dim: usize,
    ) -> Result<Embedding> {
        let view = file.tensor(name)?;
        let blocks = match view.shape[..] {
            [r, d]
                if logical_rows > 0
                    && r > logical_rows
                    && r % logical_rows == 0
                    && d * (r / logical_rows) == logical_dim =>
            {
                r / logical_rows
            }
            _ => 1,
        };
        let (rows, dim) = (logical_rows * blocks, logical_dim / blocks);
        // Texts read a few rows each, scattered over the table.
        file.advise_random_access(view.bytes);
        let table = match view.dtype {
            Dtype::F32 => StoredTable::F32(Stored::of(file, file.f32(name, &[rows, dim])?)?),
            Dtype::F16 => StoredTable::F16(Stored::of(file, file.f16(name, &[rows, dim])?)?),
            Dtype::I8 => {
                let tensor = file.i8(name, &[rows, dim])?;
                let quant = tensor
                    .quant
                    .ok_or_else(|| Error::model(arch, format!("int8 table {name} has no scale and zero point")))?;
                let (scale, zero_point) = per_row_params(file, arch, name, "int8", quant)?;
                StoredTable::I8 {
                    data: Stored::of(file, tensor.data)?,
                    scale,
                    zero_point,
                }
            }
            Dtype::U6 => {
                let tensor = file.u6(name, rows, dim)?;
                let (scale, zero_point) = per_row_params(file, arch, name, "u6", tensor.quant)?;
                StoredTable::U6 {
                    data: Stored::of(file, tensor.data)?,
                    scale,
                    zero_point,
                }
            }
            Dtype::U7 => {
                let tensor = file.u7(name, rows, dim)?;
                let (scale, zero_point) = per_row_params(file, arch, name, "u7", tensor.quant)?;
                StoredTable::U7 {
                    data: Stored::of(file, tensor.data)?,
                    scale,
                    zero_point,
                }
            }
            other => {
                return Err(Error::model(
                    arch,
                    format!("{name} has dtype {other}; an embedding table must be f32, f16, i8, u7 or u6"),
                ))
            }
        };
        Ok(Embedding {
            table,
            rows: logical_rows,
            dim: logical_dim,
            blocks,
        })
    }

    /// The kernel's view of the table.
    fn table(&self) -> Table<'_> {
        fn param<T: bytemuck::Pod>(p: &StoredParam<T>) -> PerRowOrTensor<'_, T> {
            match p {
                StoredParam::PerTensor(v) => PerRowOrTensor::Tensor(*v),
                StoredParam::PerChannel(s) => PerRowOrTensor::Row(s.get()),
            }
        }
        match &self.table {
            StoredTable::F32(s) => Table::F32(s.get()),
            StoredTable::F16(s) => Table::F16(s.get()),
            StoredTable::I8 {
                data,
                scale,
                zero_point,
            } => Table::I8 {
                data: data.get(),
                scale: param(scale),
                zero_point: param(zero_point),
            },
            StoredTable::U6 {
                data,
                scale,
                zero_point,
            } => Table::U6 {
                data: data.get(),
                scale: param(scale),
                zero_point: param(zero_point),
            },
            StoredTable::U7 {
                data,
                scale,
                zero_point,
            } => Table::U7 {
                data: data.get(),
                scale: param(scale),
                zero_point: param(zero_point),
            },
        }
    }

    /// Writes `multiplier x row(ids[i])` into row i of `out` (`add`: adds instead).
    pub fn gather(&self, ids: &[u32], multiplier: f32, out: &mut [f32], add: bool) -> Result<()> {
        let k = kernels().gather;
        let b = self.blocks;
        // Block j of row id is stored row id x b + j; the stored rows of one id are adjacent,
        // so gathering them in order writes the logical row. Ids past the table stay past it.
        let expanded: Vec<u32>;
        let ids = if b == 1 {
            ids
        } else {
            let b32 = b as u32;
            expanded = ids
                .iter()
                .flat_map(|&id| (0..b32).map(move |j| id.saturating_mul(b32).saturating_add(j)))
                .collect();
            &expanded
        };
        let (rows, dim) = (self.rows * b, self.dim / b);
        let table = self.table();
        if add {
            gather::gather_add(k, &table, rows, dim, ids, multiplier, out)?;
        } else {
            gather::gather(k, &table, rows, dim, ids, multiplier, out)?;
        }
        Ok(())
    }
}

/// The gather's scale and zero point of a quantized table: per tensor, or per row (axis 0).
fn per_row_params(
    file: &Arc<ModelFile>,
    arch: &str,
    name: &str,
    kind: &str,
    quant: I8Quant<'_>,
) -> Result<(StoredParam<f32>, StoredParam<i32>)> {
    if (matches!(quant.scale, QuantParam::PerChannel(_)) || matches!(quant.zero_point, QuantParam::PerChannel(_)))
        && quant.axis != Some(0)
    {
        return Err(Error::model(
            arch,
            format!("{kind} table {name} must be quantized per row (axis 0) or per tensor"),
        ));
    }
    Ok((
        StoredParam::of(file, quant.scale)?,
        StoredParam::of(file, quant.zero_point)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tests::util::{ramp_u6, ramp_u7, sample_bytes};

    /// The u6 and u7 tables of the format tests' sample file gather as the format defines them,
    /// `(q - zero_point) x scale x multiplier`, per row and per tensor, here in the adding form.
    #[test]
    fn bit_packed_tables_gather_their_dequantized_rows() {
        let file = Arc::new(ModelFile::from_bytes(sample_bytes()).unwrap());
        // (name, rows, dim, values, scale per row, zero point per row), as `util` writes them.
        let cases = [
            ("table.u6", 3, 5, ramp_u6(15, 1), [0.5, 0.25, 0.125], [31, 0, 63]),
            ("table.u7", 3, 9, ramp_u7(27, 3), [0.5, 0.25, 0.125], [63, 0, 127]),
            ("table.u7t", 2, 16, ramp_u7(32, 4), [0.125; 3], [64; 3]),
        ];
        for (name, rows, dim, q, scales, zero_points) in cases {
            let table = Embedding::load(&file, "bert", name, rows, dim).unwrap();
            let ids = [rows as u32 - 1, 0, 1, 0];
            let mut out = vec![1.0f32; ids.len() * dim];
            table.gather(&ids, 2.0, &mut out, true).unwrap();
            for (i, &id) in ids.iter().enumerate() {
                let r = id as usize;
                for j in 0..dim {
                    let value = (q[r * dim + j] as i32 - zero_points[r]) as f32 * (scales[r] * 2.0);
                    assert_eq!(out[i * dim + j], 1.0 + value, "{name} row {r} value {j}");
                }
            }
            assert!(table.gather(&[rows as u32], 1.0, &mut out, false).is_err(), "{name}");
        }
    }
}
