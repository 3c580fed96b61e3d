//! The order check every decoded subgraph passes (see [`check`]).

use crate::model::Operator;
use crate::TfliteError;

fn invalid(msg: String) -> TfliteError {
    TfliteError::Invalid(msg)
}

/// The interpreter runs operators in order: each reads only tensors an earlier one wrote, and
/// each tensor has one writer. Files that break this (a cycle) are refused, which also bounds
/// every graph walk (producers are strictly earlier operators, consumers strictly later).
pub(crate) fn check(operators: &[Operator], tensors: usize) -> Result<(), TfliteError> {
    let mut writer: Vec<Option<usize>> = vec![None; tensors];
    for o in operators {
        for &t in &o.outputs {
            if let Some(first) = writer[t].replace(o.index) {
                return Err(invalid(format!(
                    "tensor {t} is written by operators #{first} and #{}",
                    o.index
                )));
            }
        }
    }
    match operators.iter().find_map(|o| {
        let t = o
            .inputs
            .iter()
            .flatten()
            .find(|&&t| writer[t].is_some_and(|w| w >= o.index))?;
        Some((o.index, *t))
    }) {
        Some((o, t)) => Err(invalid(format!("operator #{o} reads tensor {t} before it is written"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{build, valid};
    use crate::TfliteModel;

    #[test]
    fn a_cycle_or_a_tensor_written_twice_is_refused() {
        // The GATHER reads its own output.
        let mut spec = valid();
        spec.ops[0].inputs = vec![1, 2];
        let err = TfliteModel::from_bytes(build(&spec)).err().unwrap().to_string();
        assert!(err.contains("before it is written"), "{err}");
        // Two GATHERs write the same tensor.
        let mut spec = valid();
        spec.ops.push(spec.ops[0].clone());
        let err = TfliteModel::from_bytes(build(&spec)).err().unwrap().to_string();
        assert!(err.contains("written by operators #0 and #1"), "{err}");
        assert!(TfliteModel::from_bytes(build(&valid())).is_ok());
    }
}
