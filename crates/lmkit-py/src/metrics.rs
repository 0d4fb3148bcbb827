//! scikit-learn's `classification_report` and `confusion_matrix` on class ids; the Python half
//! maps arbitrary labels to ids in sklearn's order (sorted unique labels, or `labels=`).

use numpy::PyArray2;
use pyo3::prelude::*;

use crate::errors::OrPy;

/// The report's text (sklearn's layout) and its dict as JSON.
#[pyfunction]
#[pyo3(signature = (y_true, y_pred, names, digits=2, zero_division=0.0))]
pub fn classification_report(
    py: Python<'_>,
    y_true: Vec<usize>,
    y_pred: Vec<usize>,
    names: Vec<String>,
    digits: usize,
    zero_division: f64,
) -> PyResult<(String, String)> {
    let r = py
        .detach(|| {
            lmkit::metrics::classification_report(&y_true, &y_pred, &names, digits, zero_division)
        })
        .or_input()?;
    let json = serde_json::to_string(&r)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok((r.to_string(), json))
}

/// Rows are true classes, columns predicted ones.
#[pyfunction]
pub fn confusion_matrix<'py>(
    py: Python<'py>,
    y_true: Vec<usize>,
    y_pred: Vec<usize>,
    n_classes: usize,
) -> PyResult<Bound<'py, PyArray2<i64>>> {
    let m = py
        .detach(|| lmkit::metrics::confusion_matrix(&y_true, &y_pred, n_classes))
        .or_input()?;
    let rows: Vec<Vec<i64>> = m
        .into_iter()
        .map(|r| r.into_iter().map(|x| x as i64).collect())
        .collect();
    if rows.is_empty() {
        return Ok(PyArray2::zeros(py, [0, 0], false));
    }
    Ok(PyArray2::from_vec2(py, &rows)?)
}
