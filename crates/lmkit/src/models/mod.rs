//! Model architectures (one folder each, read top to bottom as transformers' `modeling_*.py`)
//! and the `Auto*` entry points that pick one from a folder's config.json, as transformers'
//! `AutoModel` classes do. BERT and DistilBERT share their encoder (`nn::encoder`) and their
//! written-out backward (`grad`); each adds its config, weight names and head.

pub mod bert;
pub mod distilbert;
mod grad;
pub mod llm;
pub mod seq2seq;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor, Var};

use crate::nn::Weights;
pub use crate::nn::{LoadOptions, Precision};
pub use crate::tokenize::ModelInput;
use bert::{BertConfig, BertForSequenceClassification, BertModel};
use distilbert::{DistilBertConfig, DistilBertForSequenceClassification, DistilBertModel};

/// An architecture's config, read from config.json by its `model_type`.
#[derive(Clone, Debug)]
pub enum ArchConfig {
    Bert(BertConfig),
    DistilBert(DistilBertConfig),
}

impl ArchConfig {
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Bert(c) => c.hidden_size,
            Self::DistilBert(c) => c.dim,
        }
    }
    pub fn max_positions(&self) -> usize {
        match self {
            Self::Bert(c) => c.max_position_embeddings,
            Self::DistilBert(c) => c.max_position_embeddings,
        }
    }
}

/// config.json as read: the raw JSON (kept so a save writes back every field) and the typed
/// architecture config.
#[derive(Clone, Debug)]
pub struct Config {
    pub raw: serde_json::Value,
    pub arch: ArchConfig,
    pub path: PathBuf,
}

impl Config {
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_json(&text, path)
    }

    pub fn from_json(text: &str, path: PathBuf) -> Result<Self> {
        let raw: serde_json::Value = serde_json::from_str(text)
            .with_context(|| format!("{}: invalid JSON", path.display()))?;
        let model_type = raw["model_type"].as_str().unwrap_or("");
        let arch = match model_type {
            "bert" => ArchConfig::Bert(
                serde_json::from_value(raw.clone())
                    .with_context(|| format!("{}: not a valid BERT config", path.display()))?,
            ),
            "distilbert" => ArchConfig::DistilBert(
                serde_json::from_value(raw.clone())
                    .with_context(|| format!("{}: not a valid DistilBERT config", path.display()))?,
            ),
            "" => bail!("{}: no \"model_type\" field", path.display()),
            other => bail!(
                "{}: model_type {other:?} is not supported by lmkit's encoders (supported: bert, distilbert)",
                path.display()
            ),
        };
        Ok(Self { raw, arch, path })
    }

    /// Class names by id from `id2label`, if the config has them.
    pub fn id2label(&self) -> Option<Vec<String>> {
        let map = self.raw["id2label"].as_object()?;
        let mut v: Vec<(usize, String)> = map
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
            .collect();
        v.sort();
        let ok = v.iter().enumerate().all(|(i, (k, _))| i == *k);
        ok.then(|| v.into_iter().map(|(_, s)| s).collect())
    }
}

/// Checkpoint tensors a loaded model left unused, other than those routinely left out (a
/// pre-training or another task's head, the pooler, position-id buffers). Any listed means
/// the checkpoint and its config disagree (more layers than the config says, a renamed
/// module), as transformers' "Some weights of the model checkpoint were not used" does.
pub fn unexpected_unused(w: &Weights) -> Vec<String> {
    let routine = |n: &str| {
        let n = n
            .strip_prefix("bert.")
            .or_else(|| n.strip_prefix("distilbert."))
            .unwrap_or(n);
        [
            "cls.",
            "classifier.",
            "pre_classifier.",
            "pooler.",
            "vocab_",
            "lm_head",
            "qa_outputs",
        ]
        .iter()
        .any(|p| n.starts_with(p))
            || n.ends_with("position_ids")
    };
    w.unused().into_iter().filter(|n| !routine(n)).collect()
}

/// Says loudly (a warning) which checkpoint tensors the model did not use, when any did not fit.
fn warn_unused(w: &Weights, dir: &Path) {
    let odd = unexpected_unused(w);
    if !odd.is_empty() {
        let shown: Vec<&str> = odd.iter().take(8).map(|s| s.as_str()).collect();
        tracing::warn!(
            "{}: {} checkpoint tensor(s) were not used, so the checkpoint and its config.json \
             disagree: {}{}",
            dir.display(),
            odd.len(),
            shown.join(", "),
            if odd.len() > shown.len() { ", ..." } else { "" }
        );
    }
}

fn weights_for(dir: &Path, opts: &LoadOptions, arch: &ArchConfig) -> Result<Weights> {
    let prefix = match arch {
        ArchConfig::Bert(_) => "bert.",
        ArchConfig::DistilBert(_) => "distilbert.",
    };
    Weights::from_folder(dir, &opts.device)?
        .optional_prefixes(&[prefix])
        .configure(opts)
}

/// The body of an encoder, whatever its architecture.
pub enum Encoder {
    Bert(BertModel),
    DistilBert(DistilBertModel),
}

impl Encoder {
    pub fn load(w: &Weights, arch: &ArchConfig) -> Result<Self> {
        Ok(match arch {
            ArchConfig::Bert(c) => Self::Bert(BertModel::load(w, c, false)?),
            ArchConfig::DistilBert(c) => Self::DistilBert(DistilBertModel::load(w, c)?),
        })
    }

    /// Last hidden state (B, T, C).
    pub fn forward(&self, x: &ModelInput, train: bool) -> candle_core::Result<Tensor> {
        match self {
            Self::Bert(m) => m.forward(x, train),
            Self::DistilBert(m) => m.forward(x, train),
        }
    }
}

/// `AutoModel` (`models/auto/modeling_auto.py`): the bare encoder of a checkpoint, for hidden
/// states and embeddings.
pub struct AutoModel {
    pub encoder: Encoder,
    pub config: Config,
    pub dir: PathBuf,
}

impl AutoModel {
    /// Resolves `id` through the model store (see [`crate::hub::resolve`]) and loads it.
    pub fn from_pretrained(id: &str, opts: &LoadOptions) -> Result<Self> {
        let dir = crate::hub::resolve(id)?;
        Self::from_folder(&dir, opts)
    }

    pub fn from_folder(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let config = Config::from_folder(dir)?;
        let w = weights_for(dir, opts, &config.arch)?;
        let encoder = Encoder::load(&w, &config.arch)?;
        warn_unused(&w, dir);
        Ok(Self {
            encoder,
            config,
            dir: dir.to_path_buf(),
        })
    }

    pub fn forward(&self, x: &ModelInput) -> Result<Tensor> {
        Ok(self.encoder.forward(x, false)?)
    }
}

enum ClassifierArch {
    Bert(BertForSequenceClassification),
    DistilBert(DistilBertForSequenceClassification),
}

/// `AutoModelForSequenceClassification`: an encoder with a classification head. From a bare
/// pretrained body the head is new (normal(0, initializer_range) weights, zero bias); from a
/// fine-tuned checkpoint it is loaded as is.
pub struct AutoModelForSequenceClassification {
    arch: ClassifierArch,
    weights: Weights,
    pub config: Config,
    pub labels: Vec<String>,
    pub dir: PathBuf,
}

impl AutoModelForSequenceClassification {
    /// As in the course: `from_pretrained(id, 6)`; labels are named LABEL_0.. until set.
    pub fn from_pretrained(id: &str, num_labels: usize) -> Result<Self> {
        let labels = (0..num_labels).map(|i| format!("LABEL_{i}")).collect();
        Self::load(
            &crate::hub::resolve(id)?,
            Some(labels),
            &LoadOptions::default(),
        )
    }

    /// A fine-tuned classifier as saved, labels from its config.json.
    pub fn from_finetuned(id: &str, opts: &LoadOptions) -> Result<Self> {
        Self::load(&crate::hub::resolve(id)?, None, opts)
    }

    /// Loads from a folder. `labels`: the classes of a new head (None: take the checkpoint's
    /// `id2label`). `opts.for_training`: make every weight trainable, seeding the new head and
    /// dropout.
    pub fn load(dir: &Path, labels: Option<Vec<String>>, opts: &LoadOptions) -> Result<Self> {
        let config = Config::from_folder(dir)?;
        let w = weights_for(dir, opts, &config.arch)?;
        let labels = match labels {
            Some(l) => l,
            None => config.id2label().ok_or_else(|| {
                anyhow::anyhow!(
                    "{} has no id2label: pass the number of labels (this is a bare encoder, not a classifier)",
                    config.path.display()
                )
            })?,
        };
        if labels.is_empty() {
            bail!("a classifier needs at least one label")
        }
        Self::build(w, config, labels, dir)
    }

    /// A classifier from tensors in memory (tests, benchmarks, random models).
    pub fn from_weights(w: Weights, config: Config, labels: Vec<String>) -> Result<Self> {
        Self::build(w, config, labels, Path::new(""))
    }

    fn build(w: Weights, config: Config, labels: Vec<String>, dir: &Path) -> Result<Self> {
        let n = labels.len();
        let arch = match &config.arch {
            ArchConfig::Bert(c) => {
                ClassifierArch::Bert(BertForSequenceClassification::load(&w, c, n)?)
            }
            ArchConfig::DistilBert(c) => {
                ClassifierArch::DistilBert(DistilBertForSequenceClassification::load(&w, c, n)?)
            }
        };
        if !dir.as_os_str().is_empty() {
            warn_unused(&w, dir);
        }
        let new = w.newly_initialised();
        if !new.is_empty() {
            tracing::info!(
                "newly initialised (train this model before using it): {}",
                new.join(", ")
            );
        }
        Ok(Self {
            arch,
            weights: w,
            config,
            labels,
            dir: dir.to_path_buf(),
        })
    }

    /// Logits (B, num_labels).
    pub fn forward(&self, x: &ModelInput, train: bool) -> candle_core::Result<Tensor> {
        match &self.arch {
            ClassifierArch::Bert(m) => m.forward(x, train),
            ClassifierArch::DistilBert(m) => m.forward(x, train),
        }
    }

    /// Training mode's cross-entropy loss on a batch, and `scale` times the gradient of every
    /// parameter in `params` (scale = 1 / accumulation steps). BERT and DistilBERT on the CPU take
    /// their written-out backward pass (`grad`: the same gradients without
    /// autograd's zero-filled accumulators); anything else candle's autograd.
    pub fn loss_and_grads(
        &self,
        x: &ModelInput,
        labels: &Tensor,
        scale: f64,
        params: &[(String, Var)],
    ) -> candle_core::Result<(Tensor, crate::nn::optim::Grads)> {
        let written_out = match &self.arch {
            ClassifierArch::Bert(m) if grad::supported(m) => {
                Some(grad::loss_and_grads(m, x, labels, scale)?)
            }
            ClassifierArch::DistilBert(m) if grad::supported(m) => {
                Some(grad::loss_and_grads(m, x, labels, scale)?)
            }
            _ => None,
        };
        match written_out {
            Some((loss, mut g)) => Ok((loss, params.iter().map(|(_, p)| g.take(p)).collect())),
            None => self.loss_and_grads_autograd(x, labels, scale, params),
        }
    }

    /// [`Self::loss_and_grads`] through candle's autograd, whatever the architecture.
    pub fn loss_and_grads_autograd(
        &self,
        x: &ModelInput,
        labels: &Tensor,
        scale: f64,
        params: &[(String, Var)],
    ) -> candle_core::Result<(Tensor, crate::nn::optim::Grads)> {
        let loss = crate::nn::cross_entropy(&self.forward(x, true)?, labels)?;
        let store = (&loss * scale)?.backward()?;
        Ok((loss.detach(), crate::nn::optim::grads_of(&store, params)))
    }

    /// Trainable parameters by name (empty unless loaded with a training seed).
    pub fn params(&self) -> Vec<(String, Var)> {
        self.weights.params()
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    pub fn newly_initialised(&self) -> Vec<String> {
        self.weights.newly_initialised()
    }

    /// The config.json a save writes: the source config with this head's labels and class.
    pub fn config_json(&self) -> serde_json::Value {
        let mut c = self.config.raw.clone();
        let id2label: BTreeMap<String, String> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.clone()))
            .collect();
        let label2id: BTreeMap<String, usize> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        let arch = match self.arch {
            ClassifierArch::Bert(_) => "BertForSequenceClassification",
            ClassifierArch::DistilBert(_) => "DistilBertForSequenceClassification",
        };
        c["id2label"] = serde_json::json!(id2label);
        c["label2id"] = serde_json::json!(label2id);
        c["architectures"] = serde_json::json!([arch]);
        c["torch_dtype"] = serde_json::json!("float32");
        if let Some(o) = c.as_object_mut() {
            o.remove("num_labels");
            o.remove("_name_or_path");
        }
        c
    }

    /// Writes a Hugging Face model folder: config.json, model.safetensors (transformers'
    /// names) and the tokenizer files of the source folder. Each file is written atomically.
    pub fn save_pretrained(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let tensors: Vec<(String, Tensor)> = self
            .weights
            .named_tensors()
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_dtype(DType::F32)?)))
            .collect::<candle_core::Result<_>>()?;
        crate::formats::checkpoint::save_safetensors(&tensors, &out.join("model.safetensors"))?;
        let cfg = serde_json::to_string_pretty(&self.config_json())?;
        crate::util::write_atomic(&out.join("config.json"), cfg.as_bytes())?;
        if !self.dir.as_os_str().is_empty() && self.dir != out {
            crate::tokenize::copy_tokenizer_files(&self.dir, out)?;
        }
        Ok(())
    }
}
