//! Reading the texts argument: any iterable of `str` (a list, a tuple, a NumPy array of
//! strings, a pandas Series). Each item is checked here, with the GIL held, so the engine
//! never sees a Python object; a `None` or a non-`str` item is a `ValueError` that names its
//! position and its type.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// The texts of `items`, each with `prefix` in front (a literal prompt), as owned strings
/// the engine can read after the GIL is released.
pub fn read(items: &Bound<'_, PyAny>, what: &str, prefix: Option<&str>) -> PyResult<Vec<String>> {
    if items.is_instance_of::<PyString>() {
        return Err(PyValueError::new_err(format!(
            "{what} must be a list of str, not one str (wrap it: [text])"
        )));
    }
    let iter = items
        .try_iter()
        .map_err(|_| PyValueError::new_err(format!("{what} must be a list of str, not {}", type_name(items))))?;
    let mut out = Vec::with_capacity(items.len().unwrap_or(0));
    for (i, item) in iter.enumerate() {
        let item = item?;
        if item.is_none() {
            return Err(PyValueError::new_err(format!(
                "{what}[{i}] is None; every text must be a str (use \"\" for an empty text)"
            )));
        }
        let text = item.cast::<PyString>().map_err(|_| {
            PyValueError::new_err(format!(
                "{what}[{i}] is a {}, not a str; every text must be a str",
                type_name(&item)
            ))
        })?;
        let text = text.to_cow().map_err(|e| {
            PyValueError::new_err(format!(
                "{what}[{i}] is not valid Unicode (it cannot be encoded as UTF-8): {e}"
            ))
        })?;
        out.push(match prefix {
            Some(p) => format!("{p}{text}"),
            None => text.into_owned(),
        });
    }
    Ok(out)
}

/// The type name of `obj` for a message (`int`, `bytes`, ...).
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object of unknown type".to_string())
}
