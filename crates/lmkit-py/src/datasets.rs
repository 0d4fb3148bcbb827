//! `datasets.Dataset`: one split, a columnar table held in Rust. Selecting, shuffling and
//! splitting run here, with the same seeded permutations as `lmkit finetune`; `map` calls the
//! user's Python function from the Python half and adds its columns through `with_columns`.

use std::collections::BTreeMap;

use lmkit::data::{ClassLabel, Column, Feature};
use numpy::PyArray1;
use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::OrPy;

#[pyclass(module = "lmkit._lmkit", frozen)]
pub struct Dataset {
    pub inner: lmkit::data::Dataset,
}

impl Dataset {
    pub fn new(inner: lmkit::data::Dataset) -> Self {
        Self { inner }
    }
}

/// A column as Python sees it: numbers as numpy arrays, text and token lists as lists.
fn column_to_py<'py>(py: Python<'py>, c: &Column) -> PyResult<Bound<'py, PyAny>> {
    Ok(match c {
        Column::Str(v) => PyList::new(py, v)?.into_any(),
        Column::Int(v) => PyArray1::from_slice(py, v).into_any(),
        Column::Float(v) => PyArray1::from_slice(py, v).into_any(),
        Column::Bool(v) => PyArray1::from_slice(py, v).into_any(),
        Column::IntList(v) => PyList::new(py, v)?.into_any(),
    })
}

fn value_to_py<'py>(py: Python<'py>, c: &Column, i: usize) -> PyResult<Bound<'py, PyAny>> {
    Ok(match c {
        Column::Str(v) => v[i].clone().into_pyobject(py)?.into_any(),
        Column::Int(v) => v[i].into_pyobject(py)?.into_any(),
        Column::Float(v) => v[i].into_pyobject(py)?.into_any(),
        Column::Bool(v) => v[i].into_pyobject(py)?.to_owned().into_any(),
        Column::IntList(v) => PyList::new(py, &v[i])?.into_any(),
    })
}

/// A Python list as a column; the type comes from the values (all text, all bools, all ints,
/// all numbers, or all lists of non-negative ints).
fn column_from_py(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Column> {
    let list = obj.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "column {name:?}: expected a list of values, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    if list.is_empty() {
        return Ok(Column::Int(vec![]));
    }
    if let Ok(v) = list.extract::<Vec<String>>() {
        return Ok(Column::Str(v));
    }
    let all_bool = list
        .iter()
        .all(|x| x.is_instance_of::<pyo3::types::PyBool>());
    if all_bool {
        return Ok(Column::Bool(list.extract()?));
    }
    if let Ok(v) = list.extract::<Vec<i64>>() {
        return Ok(Column::Int(v));
    }
    if let Ok(v) = list.extract::<Vec<f64>>() {
        return Ok(Column::Float(v));
    }
    if let Ok(v) = list.extract::<Vec<Vec<u32>>>() {
        return Ok(Column::IntList(v));
    }
    Err(PyTypeError::new_err(format!(
        "column {name:?}: values must be all str, all bool, all int, all float, or all lists of \
         token ids (non-negative ints); the first is {}",
        list.get_item(0)?.repr()?
    )))
}

#[pymethods]
impl Dataset {
    /// A data set from columns (`Dataset.from_dict`); `class_labels` makes integer columns
    /// ClassLabel features with these names.
    #[staticmethod]
    #[pyo3(signature = (columns, source="dict", class_labels=None))]
    fn from_columns(
        columns: &Bound<'_, PyDict>,
        source: &str,
        class_labels: Option<BTreeMap<String, Vec<String>>>,
    ) -> PyResult<Self> {
        let mut ds = lmkit::data::Dataset::new(vec![], source).or_input()?;
        for (k, v) in columns.iter() {
            let name: String = k.extract()?;
            let col = column_from_py(&name, &v)?;
            let feature = match class_labels.as_ref().and_then(|m| m.get(&name)) {
                Some(names) => Feature::ClassLabel(ClassLabel::new(names.clone())),
                None => Feature::of(&col),
            };
            ds = ds.with_column(&name, feature, col).or_input()?;
        }
        if let Some(m) = &class_labels {
            for (name, names) in m {
                check_class_ids(&ds, name, names.len())?;
            }
        }
        Ok(Self::new(ds))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.inner
            .column_names()
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[getter]
    fn source(&self) -> String {
        self.inner.source.clone()
    }

    /// (name, kind, dtype, class names) per column; kind is "Value", "ClassLabel" or
    /// "Sequence".
    fn features(&self) -> Vec<(String, String, String, Option<Vec<String>>)> {
        self.inner
            .fields
            .iter()
            .map(|f| match &f.feature {
                Feature::Value(t) => (f.name.clone(), "Value".into(), t.clone(), None),
                Feature::Sequence(t) => (f.name.clone(), "Sequence".into(), t.clone(), None),
                Feature::ClassLabel(c) => (
                    f.name.clone(),
                    "ClassLabel".into(),
                    "int64".into(),
                    Some(c.names.clone()),
                ),
            })
            .collect()
    }

    fn column<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        column_to_py(py, self.inner.column(name).map_err(crate::errors::key)?)
    }

    fn row<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyDict>> {
        if i >= self.inner.len() {
            return Err(PyIndexError::new_err(format!(
                "row {i} is out of range ({} rows)",
                self.inner.len()
            )));
        }
        let d = PyDict::new(py);
        for f in &self.inner.fields {
            d.set_item(&f.name, value_to_py(py, &f.column, i)?)?;
        }
        Ok(d)
    }

    fn select(&self, py: Python<'_>, indices: Vec<usize>) -> PyResult<Self> {
        Ok(Self::new(
            py.detach(|| self.inner.select(&indices)).or_input()?,
        ))
    }

    fn shuffle(&self, py: Python<'_>, seed: u64) -> PyResult<Self> {
        Ok(Self::new(
            py.detach(|| self.inner.shuffle(seed)).or_input()?,
        ))
    }

    #[pyo3(signature = (test_size, seed, stratify_by_column=None))]
    fn train_test_split(
        &self,
        py: Python<'_>,
        test_size: f64,
        seed: u64,
        stratify_by_column: Option<String>,
    ) -> PyResult<(Self, Self)> {
        let mut d = py
            .detach(|| {
                self.inner
                    .train_test_split(test_size, seed, stratify_by_column.as_deref())
            })
            .or_input()?;
        match (d.splits.remove("train"), d.splits.remove("test")) {
            (Some(train), Some(test)) => Ok((Self::new(train), Self::new(test))),
            _ => Err(pyo3::exceptions::PyRuntimeError::new_err(
                "train_test_split returned no train or test part",
            )),
        }
    }

    /// Adds (or replaces) columns given as a dict of lists, each as long as the data set.
    fn with_columns(&self, columns: &Bound<'_, PyDict>) -> PyResult<Self> {
        let mut ds = self.inner.clone();
        for (k, v) in columns.iter() {
            let name: String = k.extract()?;
            let col = column_from_py(&name, &v)?;
            // A column that replaces a ClassLabel one with ids keeps its class names.
            let feature = match (ds.field(&name).map(|f| &f.feature), &col) {
                (Ok(Feature::ClassLabel(c)), Column::Int(_)) => Feature::ClassLabel(c.clone()),
                _ => Feature::of(&col),
            };
            ds = ds.with_column(&name, feature, col).or_input()?;
        }
        Ok(Self::new(ds))
    }

    fn remove_columns(&self, names: Vec<String>) -> PyResult<Self> {
        for n in &names {
            self.inner.field(n).map_err(crate::errors::key)?;
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(Self::new(self.inner.clone().remove_columns(&refs)))
    }

    fn rename_column(&self, old: &str, new: &str) -> PyResult<Self> {
        let mut ds = self.inner.clone();
        if ds.field(new).is_ok() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "column {new:?} already exists"
            )));
        }
        let f = ds
            .fields
            .iter_mut()
            .find(|f| f.name == old)
            .ok_or_else(|| crate::errors::key(anyhow::anyhow!("no column {old:?}")))?;
        f.name = new.to_string();
        Ok(Self::new(ds))
    }

    /// Makes an integer column a ClassLabel with these names (`cast_column`).
    fn with_class_label(&self, name: &str, names: Vec<String>) -> PyResult<Self> {
        let col = self.inner.column(name).map_err(crate::errors::key)?.clone();
        let n = names.len();
        let ds = self
            .inner
            .clone()
            .with_column(name, Feature::ClassLabel(ClassLabel::new(names)), col)
            .or_input()?;
        check_class_ids(&ds, name, n)?;
        Ok(Self::new(ds))
    }

    /// The first rows as a text table.
    fn head(&self, n: usize) -> String {
        self.inner.head(n)
    }
}

fn check_class_ids(ds: &lmkit::data::Dataset, name: &str, n: usize) -> PyResult<()> {
    let ids = ds
        .column(name)
        .map_err(crate::errors::key)?
        .as_int()
        .ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "column {name:?} must hold integer class ids to be a ClassLabel"
            ))
        })?;
    if let Some((row, id)) = ids
        .iter()
        .enumerate()
        .find(|(_, &i)| i < 0 || i as usize >= n)
    {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "column {name:?}, row {row}: class id {id} is out of range for {n} class names"
        )));
    }
    Ok(())
}

/// `load_dataset(name_or_path)`: the splits of a known data set, a Hugging Face cache entry, a
/// file or a folder of split files.
#[pyfunction]
pub fn load_dataset(py: Python<'_>, name_or_path: String) -> PyResult<Vec<(String, Dataset)>> {
    let d = py
        .detach(|| lmkit::data::load_dataset(&name_or_path))
        .or_input()?;
    Ok(d.splits
        .into_iter()
        .map(|(k, v)| (k, Dataset::new(v)))
        .collect())
}
