//! `AutoModel`, `AutoModelForSequenceClassification` and sentence-transformers'
//! `SentenceTransformer`: forward passes return numpy arrays.

use std::path::PathBuf;
use std::sync::Mutex;

use candle_core::{Device, Tensor};
use lmkit::models::{AutoModel, AutoModelForSequenceClassification};
use lmkit::nn::{LoadOptions, Precision};
use lmkit::tokenize::ModelInput;
use numpy::{IntoPyArray, PyArray2, PyArray3, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::OrPy;

pub fn load_options(precision: &str) -> PyResult<LoadOptions> {
    Ok(LoadOptions::precision(match precision {
        "fp32" | "float32" => Precision::Fp32,
        "bf16" | "bfloat16" => Precision::Bf16,
        "int8" => Precision::Int8,
        other => {
            return Err(PyValueError::new_err(format!(
                "precision={other:?}: use \"fp32\", \"bf16\" or \"int8\""
            )))
        }
    }))
}

/// Token arrays (batch, seq) as the model's input; the mask defaults to all ones.
fn model_input(
    input_ids: PyReadonlyArray2<'_, i64>,
    attention_mask: Option<PyReadonlyArray2<'_, i64>>,
    token_type_ids: Option<PyReadonlyArray2<'_, i64>>,
) -> PyResult<ModelInput> {
    let (b, t) = input_ids.as_array().dim();
    if b == 0 || t == 0 {
        return Err(PyValueError::new_err(format!(
            "input_ids has shape ({b}, {t}): give at least one token in one row"
        )));
    }
    let to_u32 = |name: &str, a: &PyReadonlyArray2<'_, i64>| -> PyResult<Tensor> {
        if a.as_array().dim() != (b, t) {
            return Err(PyValueError::new_err(format!(
                "{name} has shape {:?}, input_ids ({b}, {t}): they must match",
                a.as_array().dim()
            )));
        }
        let v: Vec<u32> = a
            .as_array()
            .iter()
            .map(|&x| u32::try_from(x))
            .collect::<Result<_, _>>()
            .map_err(|_| PyValueError::new_err(format!("{name} holds a negative or huge id")))?;
        Tensor::from_vec(v, (b, t), &Device::Cpu).or_other()
    };
    let ids = to_u32("input_ids", &input_ids)?;
    let mask = match &attention_mask {
        Some(m) => to_u32("attention_mask", m)?,
        None => Tensor::ones((b, t), candle_core::DType::U32, &Device::Cpu).or_other()?,
    };
    let types = match &token_type_ids {
        Some(m) => Some(to_u32("token_type_ids", m)?),
        None => None,
    };
    Ok(ModelInput {
        input_ids: ids,
        attention_mask: mask,
        token_type_ids: types,
    })
}

fn check_vocab(x: &ModelInput, vocab: usize) -> PyResult<()> {
    let max = x
        .input_ids
        .flatten_all()
        .and_then(|t| t.max(0))
        .and_then(|t| t.to_scalar::<u32>())
        .or_other()?;
    if max as usize >= vocab {
        return Err(PyValueError::new_err(format!(
            "input_ids holds id {max}, but the model's vocabulary has {vocab} tokens: tokenize \
             with this model's tokenizer"
        )));
    }
    Ok(())
}

fn vocab_size(raw: &serde_json::Value) -> usize {
    raw["vocab_size"].as_u64().unwrap_or(u64::MAX) as usize
}

/// `AutoModel`: the bare encoder.
#[pyclass(module = "lmkit._lmkit", frozen)]
pub struct Encoder {
    inner: AutoModel,
}

#[pymethods]
impl Encoder {
    #[staticmethod]
    #[pyo3(signature = (id, precision="fp32"))]
    fn from_pretrained(py: Python<'_>, id: String, precision: &str) -> PyResult<Self> {
        let opts = load_options(precision)?;
        let inner = py
            .detach(|| AutoModel::from_pretrained(&id, &opts))
            .or_other()?;
        Ok(Self { inner })
    }

    /// last_hidden_state (batch, seq, hidden).
    #[pyo3(signature = (input_ids, attention_mask=None, token_type_ids=None))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
        token_type_ids: Option<PyReadonlyArray2<'py, i64>>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let x = model_input(input_ids, attention_mask, token_type_ids)?;
        check_vocab(&x, vocab_size(&self.inner.config.raw))?;
        let h = py
            .detach(|| -> anyhow::Result<_> {
                let h = self.inner.forward(&x)?;
                let dims = h.dims3()?;
                Ok((dims, h.flatten_all()?.to_vec1::<f32>()?))
            })
            .or_other()?;
        let ((b, t, c), flat) = h;
        let a = numpy::ndarray::Array3::from_shape_vec((b, t, c), flat)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(a.into_pyarray(py))
    }

    #[getter]
    fn config(&self) -> String {
        self.inner.config.raw.to_string()
    }

    #[getter]
    fn name_or_path(&self) -> String {
        self.inner.dir.display().to_string()
    }
}

/// `AutoModelForSequenceClassification`, trainable: loaded with a seed for the new head and
/// dropout, as `lmkit finetune` loads it.
#[pyclass(module = "lmkit._lmkit", frozen)]
pub struct SequenceClassifier {
    pub inner: Mutex<AutoModelForSequenceClassification>,
    /// The id its tokenizer pads with (training and prediction batches pad with it), read
    /// once at load.
    pub pad_token_id: u32,
}

impl SequenceClassifier {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, AutoModelForSequenceClassification> {
        // A panic while training poisons the lock; the weights are still the last step's.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl SequenceClassifier {
    /// `labels`: the classes of a new head (None: a fine-tuned checkpoint's own id2label).
    #[staticmethod]
    #[pyo3(signature = (id, labels=None, seed=42, precision="fp32"))]
    fn from_pretrained(
        py: Python<'_>,
        id: String,
        labels: Option<Vec<String>>,
        seed: u64,
        precision: &str,
    ) -> PyResult<Self> {
        let opts = match (precision, &labels) {
            ("fp32" | "float32", _) => LoadOptions::training(seed),
            (_, None) => load_options(precision)?,
            (p, Some(_)) => {
                return Err(PyValueError::new_err(format!(
                    "precision={p:?} is for inference: a new head is trained in fp32"
                )))
            }
        };
        let (inner, pad_token_id) = py
            .detach(|| -> anyhow::Result<_> {
                let dir = lmkit::pipelines::model_dir(&id)?;
                let model = AutoModelForSequenceClassification::load(&dir, labels, &opts)?;
                // A model folder without tokenizer files pads with 0, BERT's [PAD].
                let pad =
                    lmkit::tokenize::AutoTokenizer::from_folder(&dir).map_or(0, |t| t.pad_token_id);
                Ok((model, pad))
            })
            .or_other()?;
        Ok(Self {
            inner: Mutex::new(inner),
            pad_token_id,
        })
    }

    /// logits (batch, num_labels).
    #[pyo3(signature = (input_ids, attention_mask=None, token_type_ids=None))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
        token_type_ids: Option<PyReadonlyArray2<'py, i64>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = model_input(input_ids, attention_mask, token_type_ids)?;
        check_vocab(&x, vocab_size(&self.lock().config.raw))?;
        let rows = py
            .detach(|| -> anyhow::Result<Vec<Vec<f32>>> {
                Ok(self.lock().forward(&x, false)?.detach().to_vec2::<f32>()?)
            })
            .or_input()?;
        Ok(PyArray2::from_vec2(py, &rows)?)
    }

    #[getter]
    fn labels(&self) -> Vec<String> {
        self.lock().labels.clone()
    }

    #[setter]
    fn set_labels(&self, labels: Vec<String>) -> PyResult<()> {
        let mut m = self.lock();
        if labels.len() != m.labels.len() {
            return Err(PyValueError::new_err(format!(
                "{} labels given, the head has {}",
                labels.len(),
                m.labels.len()
            )));
        }
        m.labels = labels;
        Ok(())
    }

    #[getter]
    fn config(&self) -> String {
        self.lock().config_json().to_string()
    }

    #[getter]
    fn name_or_path(&self) -> String {
        self.lock().dir.display().to_string()
    }

    fn save_pretrained(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.lock().save_pretrained(&path)).or_other()
    }

    /// Every trainable tensor by its checkpoint name, as float32 arrays.
    fn state_dict<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Vec<(String, Bound<'py, numpy::PyArrayDyn<f32>>)>> {
        let tensors = py
            .detach(|| -> anyhow::Result<Vec<_>> {
                self.lock()
                    .weights()
                    .named_tensors()
                    .into_iter()
                    .map(|(n, t)| {
                        let t = t.to_dtype(candle_core::DType::F32)?;
                        Ok((n, t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?))
                    })
                    .collect()
            })
            .or_other()?;
        tensors
            .into_iter()
            .map(|(n, dims, v)| {
                let a = numpy::ndarray::ArrayD::from_shape_vec(dims, v)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?;
                Ok((n, a.into_pyarray(py)))
            })
            .collect()
    }
}

/// sentence-transformers' `SentenceTransformer`: pooled (and, where the model says so,
/// normalised) sentence vectors.
#[pyclass(module = "lmkit._lmkit", frozen)]
pub struct SentenceEncoder {
    inner: lmkit::embed::SentenceTransformer,
}

#[pymethods]
impl SentenceEncoder {
    #[new]
    #[pyo3(signature = (id, precision="fp32"))]
    fn new(py: Python<'_>, id: String, precision: &str) -> PyResult<Self> {
        let opts = load_options(precision)?;
        let inner = py
            .detach(|| lmkit::embed::SentenceTransformer::from_pretrained(&id, &opts))
            .or_other()?;
        Ok(Self { inner })
    }

    #[pyo3(signature = (texts, prompt_name=None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        prompt_name: Option<String>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let rows = py
            .detach(|| -> anyhow::Result<_> {
                lmkit::pipelines::check_texts(&texts)?;
                self.inner
                    .encode_with_prompt(&texts, prompt_name.as_deref())
            })
            .or_input()?;
        Ok(PyArray2::from_vec2(py, &rows)?)
    }

    #[getter]
    fn max_seq_length(&self) -> usize {
        self.inner.max_seq_length
    }

    fn get_sentence_embedding_dimension(&self) -> usize {
        self.dim()
    }
}

impl SentenceEncoder {
    fn dim(&self) -> usize {
        self.inner.model.config.arch.hidden_size()
    }
}
