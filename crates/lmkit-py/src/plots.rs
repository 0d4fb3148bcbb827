//! Charts drawn by the library (plotters) to PNG and SVG files; the Python half reads them
//! back into a `Figure` that shows itself in Jupyter.

use std::path::PathBuf;

use lmkit::plot::{save, BarChart, ConfusionMatrixChart};
use pyo3::prelude::*;

use crate::datasets::Dataset;
use crate::errors::OrPy;

/// Writes `<stem>.png` and `<stem>.svg`; returns the files (none when there was nothing to draw).
#[pyfunction]
#[pyo3(signature = (matrix, labels, stem, title="Confusion matrix"))]
pub fn confusion_matrix_plot(
    py: Python<'_>,
    matrix: Vec<Vec<usize>>,
    labels: Vec<String>,
    stem: PathBuf,
    title: &str,
) -> PyResult<Vec<PathBuf>> {
    if matrix.len() != labels.len() || matrix.iter().any(|r| r.len() != labels.len()) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "the matrix must be {n} x {n} for {n} display labels",
            n = labels.len()
        )));
    }
    let chart = ConfusionMatrixChart {
        title: title.to_string(),
        labels,
        matrix,
    };
    py.detach(|| save(&chart, &stem)).or_input()
}

#[pyfunction]
pub fn bar_plot(
    py: Python<'_>,
    bars: Vec<(String, f64)>,
    title: String,
    x_label: String,
    y_label: String,
    stem: PathBuf,
) -> PyResult<Vec<PathBuf>> {
    let chart = BarChart {
        title,
        x_label,
        y_label,
        bars,
    };
    py.detach(|| save(&chart, &stem)).or_input()
}

/// The course's EDA charts of a split: class counts, words per text, and its density per class.
#[pyfunction]
pub fn eda_plots(
    py: Python<'_>,
    data: &Dataset,
    text_column: &str,
    label_column: &str,
    out_dir: PathBuf,
) -> PyResult<Vec<PathBuf>> {
    py.detach(|| lmkit::data::eda::write_plots(&data.inner, text_column, label_column, &out_dir))
        .or_input()
}

/// Training curves from the epoch logs a run returns (JSON list).
#[pyfunction]
pub fn curves_plot(py: Python<'_>, history: &str, stem: PathBuf) -> PyResult<Vec<PathBuf>> {
    let h: Vec<lmkit::train::EpochLog> = serde_json::from_str(history)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("history: {e}")))?;
    py.detach(|| save(&lmkit::train::curves_chart(&h), &stem))
        .or_input()
}
