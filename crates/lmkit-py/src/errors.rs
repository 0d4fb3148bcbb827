//! Rust errors as Python exceptions, with the same message the CLI prints.
//!
//! A missing model or file is `FileNotFoundError` wherever it happens. Otherwise the call site
//! says what a failure means: where the caller's arguments are checked (texts, labels, sizes)
//! it is `ValueError`; where a model loads or trains it is `RuntimeError`.

use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

fn not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<lmkit::util::NotFound>().is_some()
            || c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

fn message(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

/// For calls whose failures are the caller's input.
pub fn input(e: anyhow::Error) -> PyErr {
    if not_found(&e) {
        PyFileNotFoundError::new_err(message(&e))
    } else {
        PyValueError::new_err(message(&e))
    }
}

/// For loading, training and everything else.
pub fn other(e: anyhow::Error) -> PyErr {
    if not_found(&e) {
        PyFileNotFoundError::new_err(message(&e))
    } else {
        PyRuntimeError::new_err(message(&e))
    }
}

/// `?` on a `Result<T, anyhow::Error>` with the right exception.
pub trait OrPy<T> {
    fn or_input(self) -> Result<T, PyErr>;
    fn or_other(self) -> Result<T, PyErr>;
}

impl<T, E: Into<anyhow::Error>> OrPy<T> for Result<T, E> {
    fn or_input(self) -> Result<T, PyErr> {
        self.map_err(|e| input(e.into()))
    }
    fn or_other(self) -> Result<T, PyErr> {
        self.map_err(|e| other(e.into()))
    }
}

/// A missing column or key: `KeyError`, as a dict lookup.
pub fn key(e: anyhow::Error) -> PyErr {
    pyo3::exceptions::PyKeyError::new_err(message(&e))
}
