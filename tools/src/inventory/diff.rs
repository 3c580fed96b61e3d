//! Compares two [`Inventory`]s (`octet diff A B`): tensor counts, whether inputs and outputs
//! agree, every tensor whose dtype or stored size changed, and the total size change.
//!
//! Tensors are compared as groups: a tensor plus its companions (scales, zero points, column
//! sums), so an f32 weight that became int8 is charged for the scales it now needs. Groups are
//! matched by name. When fewer than half of them match by name but both sides hold the same
//! number of groups with the same shapes in the same order (a renaming converter), they are
//! matched by position instead, and the diff says so. Files of different formats name their
//! tensors differently (octet fuses Q, K and V, for one): the diff then reports honestly how
//! little matched and lists the rest per side.

use super::{Inventory, Port, TensorEntry};
use serde::Serialize;
use std::collections::HashMap;

/// How the two sides' tensors were paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Matching {
    Name,
    /// Same count and shapes in the same order, names different.
    Position,
}

/// One side of a tensor group: dtype, shape and bytes (companions included).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    /// The tensor's bytes plus its companions'.
    pub bytes: u64,
    pub companions: usize,
    pub quantization: String,
}

/// A matched tensor group whose dtype or size differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub a: Side,
    pub b: Side,
}

impl Change {
    /// Bytes saved going from A to B (negative: B is larger).
    pub fn saved(&self) -> i64 {
        self.a.bytes as i64 - self.b.bytes as i64
    }
}

/// The comparison of A with B.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub matching: Matching,
    /// Tensor groups (companions folded) per side.
    pub groups: (usize, usize),
    /// All tensors per side, companions included.
    pub tensors: (usize, usize),
    pub same_inputs: bool,
    pub same_outputs: bool,
    pub matched: usize,
    /// Matched groups with the same dtype and bytes.
    pub unchanged: usize,
    pub unchanged_bytes: u64,
    pub changed: Vec<Change>,
    pub only_in_a: Vec<Side>,
    pub only_in_b: Vec<Side>,
    pub file_bytes: (u64, u64),
}

/// The groups of an inventory: each non-companion tensor with its companions, in file order.
fn groups(inv: &Inventory) -> Vec<Side> {
    let mut companions: HashMap<&str, Vec<&TensorEntry>> = HashMap::new();
    for t in &inv.tensors {
        if let Some(of) = &t.companion_of {
            companions.entry(of.as_str()).or_default().push(t);
        }
    }
    inv.tensors
        .iter()
        .filter(|t| t.companion_of.is_none())
        .map(|t| {
            let extra = companions.get(t.name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            Side {
                name: t.name.clone(),
                dtype: t.dtype.clone(),
                shape: t.shape.clone(),
                bytes: t.bytes + extra.iter().map(|c| c.bytes).sum::<u64>(),
                companions: extra.len(),
                quantization: t.quantization.to_string(),
            }
        })
        .collect()
}

fn same_ports(a: &[Port], b: &[Port]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.dtype == y.dtype && x.shape == y.shape)
}

/// Compares `a` with `b`.
pub fn diff(a: &Inventory, b: &Inventory) -> Diff {
    let (ga, gb) = (groups(a), groups(b));
    let by_name: HashMap<&str, usize> = gb.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let name_matches = ga.iter().filter(|s| by_name.contains_key(s.name.as_str())).count();
    let by_position = name_matches * 2 < ga.len().max(gb.len())
        && ga.len() == gb.len()
        && !ga.is_empty()
        && ga.iter().zip(&gb).all(|(x, y)| x.shape == y.shape);
    let pairs: Vec<(usize, usize)> = if by_position {
        (0..ga.len()).map(|i| (i, i)).collect()
    } else {
        ga.iter()
            .enumerate()
            .filter_map(|(i, s)| by_name.get(s.name.as_str()).map(|&j| (i, j)))
            .collect()
    };
    let (mut in_a, mut in_b) = (vec![false; ga.len()], vec![false; gb.len()]);
    let (mut changed, mut unchanged, mut unchanged_bytes) = (Vec::new(), 0, 0);
    for &(i, j) in &pairs {
        in_a[i] = true;
        in_b[j] = true;
        let (x, y) = (&ga[i], &gb[j]);
        if x.dtype == y.dtype && x.bytes == y.bytes {
            unchanged += 1;
            unchanged_bytes += x.bytes;
        } else {
            changed.push(Change {
                a: x.clone(),
                b: y.clone(),
            });
        }
    }
    let only = |g: &[Side], used: &[bool]| {
        g.iter()
            .zip(used)
            .filter(|(_, &u)| !u)
            .map(|(s, _)| s.clone())
            .collect()
    };
    Diff {
        matching: if by_position {
            Matching::Position
        } else {
            Matching::Name
        },
        groups: (ga.len(), gb.len()),
        tensors: (a.tensors.len(), b.tensors.len()),
        same_inputs: same_ports(&a.inputs, &b.inputs),
        same_outputs: same_ports(&a.outputs, &b.outputs),
        matched: pairs.len(),
        unchanged,
        unchanged_bytes,
        changed,
        only_in_a: only(&ga, &in_a),
        only_in_b: only(&gb, &in_b),
        file_bytes: (a.file_bytes, b.file_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, Quantization};
    use super::*;
    use std::path::Path;

    fn entry(name: &str, dtype: &str, shape: &[usize], bytes: u64, of: Option<&str>) -> TensorEntry {
        TensorEntry {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: dtype.into(),
            bytes,
            quantization: Quantization::None,
            companion_of: of.map(str::to_string),
        }
    }

    fn inventory(tensors: Vec<TensorEntry>) -> Inventory {
        let mut inv = Inventory::new(
            Format::Octet,
            Path::new("x.octet"),
            tensors.iter().map(|t| t.bytes).sum(),
        );
        inv.tensors = tensors;
        inv
    }

    #[test]
    fn by_name_with_companions_folded() {
        let a = inventory(vec![
            entry("w", "f32_packed", &[4, 8], 128, None),
            entry("n", "f32", &[8], 32, None),
        ]);
        let b = inventory(vec![
            entry("w", "i8_packed", &[4, 8], 32, None),
            entry("w.col_scales", "f32", &[4], 16, Some("w")),
            entry("n", "f32", &[8], 32, None),
            entry("extra", "f32", &[1], 4, None),
        ]);
        let d = diff(&a, &b);
        assert_eq!(d.matching, Matching::Name);
        assert_eq!((d.groups, d.tensors, d.matched, d.unchanged), ((2, 3), (2, 4), 2, 1));
        assert_eq!(d.changed.len(), 1);
        assert_eq!(
            (d.changed[0].b.bytes, d.changed[0].b.companions, d.changed[0].saved()),
            (48, 1, 80)
        );
        assert!(d.only_in_a.is_empty());
        assert_eq!(d.only_in_b[0].name, "extra");
        assert!(d.same_inputs && d.same_outputs);
    }

    #[test]
    fn by_position_when_names_differ_but_shapes_agree() {
        let a = inventory(vec![
            entry("a.0", "F32", &[2, 3], 24, None),
            entry("a.1", "F32", &[3], 12, None),
        ]);
        let b = inventory(vec![
            entry("b.0", "INT8", &[2, 3], 6, None),
            entry("b.1", "F32", &[3], 12, None),
        ]);
        let d = diff(&a, &b);
        assert_eq!((d.matching, d.matched, d.changed.len()), (Matching::Position, 2, 1));
        // Shapes differ: no position match, nothing matched by name.
        let c = inventory(vec![
            entry("c.0", "F32", &[3, 2], 24, None),
            entry("c.1", "F32", &[3], 12, None),
        ]);
        let d = diff(&a, &c);
        assert_eq!(
            (d.matching, d.matched, d.only_in_a.len(), d.only_in_b.len()),
            (Matching::Name, 0, 2, 2)
        );
    }
}
