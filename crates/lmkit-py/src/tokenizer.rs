//! `AutoTokenizer` (transformers' `PreTrainedTokenizerFast`): the Python half turns these
//! lists into a `BatchEncoding` and, with `return_tensors="np"`, into numpy arrays.

use lmkit::tokenize::{AutoTokenizer, EncodeOptions, Padding};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::OrPy;

#[pyclass(module = "lmkit._lmkit", frozen)]
pub struct Tokenizer {
    pub inner: AutoTokenizer,
}

/// transformers' `padding` argument, already normalised by the Python half to one of
/// "do_not_pad", "longest", "max_length".
fn padding(p: &str, max_length: Option<usize>) -> PyResult<Padding> {
    Ok(match p {
        "do_not_pad" => Padding::None,
        "longest" => Padding::Longest,
        "max_length" => {
            Padding::MaxLength(max_length.ok_or_else(|| {
                PyValueError::new_err("padding=\"max_length\" needs max_length=N")
            })?)
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "padding={other:?}: use True / \"longest\", \"max_length\" or False"
            )))
        }
    })
}

#[pymethods]
impl Tokenizer {
    #[staticmethod]
    fn from_pretrained(py: Python<'_>, id: String) -> PyResult<Self> {
        let inner = py
            .detach(|| AutoTokenizer::from_pretrained(&id))
            .or_other()?;
        Ok(Self { inner })
    }

    /// Encodes texts (or text pairs) and returns a dict of lists per row.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (texts, pairs=None, padding="do_not_pad", truncation=false, max_length=None, add_special_tokens=true))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        pairs: Option<Vec<String>>,
        padding: &str,
        truncation: bool,
        max_length: Option<usize>,
        add_special_tokens: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        if max_length == Some(0) {
            return Err(PyValueError::new_err("max_length must be at least 1"));
        }
        let opts = EncodeOptions {
            padding: self::padding(padding, max_length)?,
            // Without truncation nothing is cut, whatever max_length says (it may still be
            // the padding length), as in transformers.
            max_length: if truncation {
                max_length
            } else {
                Some(usize::MAX)
            },
            add_special_tokens,
        };
        let enc = py
            .detach(|| match &pairs {
                None => self.inner.encode_batch(&texts, opts),
                Some(p) => {
                    if p.len() != texts.len() {
                        anyhow::bail!(
                            "{} texts but {} text_pair entries: give one pair per text",
                            texts.len(),
                            p.len()
                        )
                    }
                    let pairs: Vec<(&str, &str)> = texts
                        .iter()
                        .zip(p)
                        .map(|(a, b)| (a.as_str(), b.as_str()))
                        .collect();
                    self.inner.encode_pairs(&pairs, opts)
                }
            })
            .or_input()?;
        let d = PyDict::new(py);
        d.set_item("input_ids", enc.input_ids)?;
        d.set_item("token_type_ids", enc.token_type_ids)?;
        d.set_item("attention_mask", enc.attention_mask)?;
        d.set_item("tokens", enc.tokens)?;
        Ok(d)
    }

    #[pyo3(signature = (ids, skip_special_tokens=false))]
    fn decode(&self, ids: Vec<u32>, skip_special_tokens: bool) -> PyResult<String> {
        self.inner.decode(&ids, skip_special_tokens).or_input()
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.inner().id_to_token(id)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    #[getter]
    fn model_input_names(&self) -> Vec<String> {
        self.inner.model_input_names.clone()
    }
    #[getter]
    fn model_max_length(&self) -> usize {
        self.inner.model_max_length
    }
    #[getter]
    fn pad_token_id(&self) -> u32 {
        self.inner.pad_token_id
    }
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    #[getter]
    fn name_or_path(&self) -> String {
        self.inner.dir.display().to_string()
    }
}
