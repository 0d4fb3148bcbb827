//! `pipeline("zero-shot-classification")`: score candidate labels no model was trained on.
//!
//! Two methods:
//! - **NLI** (transformers' `ZeroShotClassificationPipeline`): each (text, hypothesis) pair goes
//!   through an entailment model; single-label scores are the softmax of the entailment logits
//!   across the candidates, multi-label scores the softmax of [contradiction, entailment] per
//!   candidate.
//! - **Embedding** (the default; no NLI checkpoint can be had here): cosine similarity between
//!   the text and each filled-in hypothesis under a sentence-embedding model, turned into scores
//!   by a calibration fitted on the emotion validation split (see [`Calibration`]).

use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use candle_core::Device;
use serde::Serialize;

use crate::embed::{cosine_similarity, SentenceTransformer};
use crate::models::{AutoModelForSequenceClassification, LoadOptions};
use crate::tokenize::{AutoTokenizer, EncodeOptions, Padding};

pub const DEFAULT_TEMPLATE: &str = "This example is {}.";
pub const ENGLISH_EMBEDDING_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
pub const MULTILINGUAL_EMBEDDING_MODEL: &str = "intfloat/multilingual-e5-small";

#[derive(Clone, Debug)]
pub struct ZeroShotOptions {
    pub candidate_labels: Vec<String>,
    /// Must contain `{}`, replaced by each label.
    pub hypothesis_template: String,
    /// Score each label on its own (scores need not sum to 1).
    pub multi_label: bool,
}

impl ZeroShotOptions {
    pub fn new<S: Into<String>>(labels: impl IntoIterator<Item = S>) -> Self {
        Self {
            candidate_labels: labels.into_iter().map(Into::into).collect(),
            hypothesis_template: DEFAULT_TEMPLATE.into(),
            multi_label: false,
        }
    }

    fn hypotheses(&self) -> Result<Vec<String>> {
        if self.candidate_labels.is_empty() {
            bail!("zero-shot-classification needs candidate labels (e.g. --labels sports,politics)")
        }
        if let Some(i) = self
            .candidate_labels
            .iter()
            .position(|l| l.trim().is_empty())
        {
            bail!("candidate label {} is empty", i + 1)
        }
        if !self.hypothesis_template.contains("{}") {
            bail!(
                "the hypothesis template {:?} has no {{}} for the label, e.g. \"This example is {{}}.\"",
                self.hypothesis_template
            )
        }
        Ok(self
            .candidate_labels
            .iter()
            .map(|l| self.hypothesis_template.replacen("{}", l, 1))
            .collect())
    }
}

/// One text's result: labels and scores, best first (transformers' output).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ZeroShotOutput {
    pub sequence: String,
    pub labels: Vec<String>,
    pub scores: Vec<f32>,
}

/// How cosine similarities become scores in the embedding method.
///
/// Single-label: `softmax(cos / temperature)` over the candidates. Multi-label:
/// `sigmoid((cos - bias) / scale)` per candidate. The constants are fitted by
/// `cargo run --release --example calibrate_zero_shot` on the emotion validation split with the
/// six emotion names as candidates: `temperature` minimises the single-label log loss, `bias`
/// and `scale` are a logistic regression of "is this the true label" on the cosine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    pub temperature: f32,
    pub bias: f32,
    pub scale: f32,
}

/// The fitted calibration of a known embedding model (others get all-MiniLM-L6-v2's).
/// Fitted with the default template by `examples/calibrate_zero_shot.rs` on the emotion
/// validation split; emotion test accuracy of the argmax:
/// all-MiniLM-L6-v2 0.4010 (validation NLL 1.53 vs 1.79 uniform), multilingual-e5-small 0.5435
/// (NLL 1.30). e5's cosines crowd into 0.75-0.9, hence its much smaller temperature.
pub fn calibration(model_id: &str) -> Calibration {
    if model_id.contains("multilingual-e5") {
        Calibration {
            temperature: 0.0120,
            bias: 0.860,
            scale: 0.0390,
        }
    } else {
        Calibration {
            temperature: 0.0840,
            bias: 0.360,
            scale: 0.1364,
        }
    }
}

/// The NLI method's model and the two label ids it reads.
pub struct NliModel {
    pub model: AutoModelForSequenceClassification,
    pub tokenizer: AutoTokenizer,
    pub entailment_id: usize,
    pub contradiction_id: usize,
    pub max_length: usize,
}

impl NliModel {
    pub fn new(id: &str, opts: &LoadOptions) -> Result<Self> {
        let (model, tokenizer, max_length) = super::load_classifier(id, opts)?;
        // As transformers: the first label whose name starts with "entail" (any case); the
        // contradiction logit is label 0, or the last label when entailment is 0.
        let entailment_id = model
            .labels
            .iter()
            .position(|l| l.to_lowercase().starts_with("entail"))
            .ok_or_else(|| {
                anyhow!(
                    "{id} is not an NLI model: none of its labels ({}) starts with \"entail\". \
                     Pass an NLI checkpoint, or leave --model out to use the embedding method.",
                    model.labels.join(", ")
                )
            })?;
        let n = model.labels.len();
        if n < 2 {
            bail!("{id}: an NLI model needs at least 2 labels, it has {n}")
        }
        let contradiction_id = if entailment_id == 0 { n - 1 } else { 0 };
        Ok(Self {
            model,
            tokenizer,
            entailment_id,
            contradiction_id,
            max_length,
        })
    }

    /// Logits of every (text, hypothesis) pair: `[text][hypothesis][label]`.
    pub fn pair_logits(
        &self,
        texts: &[&str],
        hypotheses: &[String],
        batch_size: usize,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        let pairs: Vec<(&str, &str)> = texts
            .iter()
            .flat_map(|t| hypotheses.iter().map(move |h| (*t, h.as_str())))
            .collect();
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].0.len() + pairs[i].1.len()));
        let mut out = vec![vec![]; pairs.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<(&str, &str)> = chunk.iter().map(|&i| pairs[i]).collect();
            let enc = self.tokenizer.encode_pairs_only_first(
                &batch,
                EncodeOptions {
                    padding: Padding::Longest,
                    max_length: Some(self.max_length),
                    add_special_tokens: true,
                },
            )?;
            let logits = self.model.forward(&enc.to_input(&Device::Cpu)?, false)?;
            for (row, &i) in logits.to_vec2::<f32>()?.into_iter().zip(chunk) {
                out[i] = row;
            }
        }
        let h = hypotheses.len();
        Ok(out.chunks(h).map(|c| c.to_vec()).collect())
    }
}

// One per pipeline, built once: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Method {
    Nli(Box<NliModel>),
    Embedding {
        model: Box<SentenceTransformer>,
        calibration: Calibration,
    },
    /// No model named: all-MiniLM-L6-v2 for ASCII input, multilingual-e5-small otherwise,
    /// each loaded on first use.
    Auto {
        english: OnceLock<SentenceTransformer>,
        multilingual: OnceLock<SentenceTransformer>,
    },
}

pub struct ZeroShotClassificationPipeline {
    method: Method,
    pub model_id: String,
    pub batch_size: usize,
    /// How the default method's models load when first used.
    load: LoadOptions,
}

impl ZeroShotClassificationPipeline {
    /// `None`: the embedding method with the default models. A model whose labels include an
    /// entailment class: the NLI method. Any other model: the embedding method with it.
    pub fn new(id: Option<&str>, opts: &LoadOptions) -> Result<Self> {
        let Some(id) = id else {
            return Ok(Self {
                method: Method::Auto {
                    english: OnceLock::new(),
                    multilingual: OnceLock::new(),
                },
                model_id: format!(
                    "{ENGLISH_EMBEDDING_MODEL} (English) / {MULTILINGUAL_EMBEDDING_MODEL} (other scripts)"
                ),
                batch_size: 32,
                load: opts.clone(),
            });
        };
        let dir = super::model_dir(id)?;
        let config = crate::models::Config::from_folder(&dir).ok();
        let is_nli = config
            .and_then(|c| c.id2label())
            .is_some_and(|l| l.iter().any(|l| l.to_lowercase().starts_with("entail")));
        let method = if is_nli {
            Method::Nli(Box::new(NliModel::new(id, opts)?))
        } else {
            Method::Embedding {
                model: Box::new(SentenceTransformer::from_folder(&dir, opts)?),
                calibration: calibration(id),
            }
        };
        Ok(Self {
            method,
            model_id: id.to_string(),
            batch_size: 32,
            load: opts.clone(),
        })
    }

    /// The embedding method around a sentence-embedding model already loaded (a server
    /// shares one model between its embedding and zero-shot routes).
    pub fn from_embedding(model: SentenceTransformer, id: &str) -> Self {
        Self {
            method: Method::Embedding {
                model: Box::new(model),
                calibration: calibration(id),
            },
            model_id: id.to_string(),
            batch_size: 32,
            load: LoadOptions::default(),
        }
    }

    /// The sentence-embedding model of the embedding method with a chosen model.
    pub fn embedding_model(&self) -> Option<&SentenceTransformer> {
        match &self.method {
            Method::Embedding { model, .. } => Some(model),
            _ => None,
        }
    }

    /// "nli" or "embedding".
    pub fn method_name(&self) -> &'static str {
        match self.method {
            Method::Nli(_) => "nli",
            _ => "embedding",
        }
    }

    pub fn call<S: AsRef<str>>(
        &self,
        texts: &[S],
        opts: &ZeroShotOptions,
    ) -> Result<Vec<ZeroShotOutput>> {
        super::check_texts(texts)?;
        let hyps = opts.hypotheses()?;
        let texts: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
        let scores: Vec<Vec<f32>> = match &self.method {
            Method::Nli(m) => {
                let logits = m.pair_logits(&texts, &hyps, self.batch_size)?;
                logits
                    .iter()
                    .map(|per_h| nli_scores(per_h, m.entailment_id, m.contradiction_id, opts))
                    .collect::<Result<_>>()?
            }
            Method::Embedding { model, calibration } => {
                embedding_scores(model, *calibration, &texts, &hyps, opts.multi_label)?
            }
            Method::Auto {
                english,
                multilingual,
            } => {
                let id = Self::auto_model_for(&texts, opts);
                let cell = if id == ENGLISH_EMBEDDING_MODEL {
                    english
                } else {
                    multilingual
                };
                let model = get_or_load(cell, id, &self.load)?;
                embedding_scores(model, calibration(id), &texts, &hyps, opts.multi_label)?
            }
        };
        Ok(texts
            .iter()
            .zip(scores)
            .map(|(t, s)| {
                let mut idx: Vec<usize> = (0..s.len()).collect();
                idx.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
                ZeroShotOutput {
                    sequence: t.to_string(),
                    labels: idx
                        .iter()
                        .map(|&i| opts.candidate_labels[i].clone())
                        .collect(),
                    scores: idx.iter().map(|&i| s[i]).collect(),
                }
            })
            .collect())
    }

    /// Which embedding model the default method uses for these texts and labels.
    pub fn auto_model_for<S: AsRef<str>>(texts: &[S], opts: &ZeroShotOptions) -> &'static str {
        let ascii = texts.iter().all(|t| t.as_ref().is_ascii())
            && opts.candidate_labels.iter().all(|l| l.is_ascii())
            && opts.hypothesis_template.is_ascii();
        if ascii {
            ENGLISH_EMBEDDING_MODEL
        } else {
            MULTILINGUAL_EMBEDDING_MODEL
        }
    }
}

fn get_or_load<'a>(
    cell: &'a OnceLock<SentenceTransformer>,
    id: &str,
    opts: &LoadOptions,
) -> Result<&'a SentenceTransformer> {
    if let Some(m) = cell.get() {
        return Ok(m);
    }
    let m = SentenceTransformer::from_pretrained(id, opts)?;
    Ok(cell.get_or_init(|| m))
}

/// transformers' post-processing of one text's pair logits (`[hypothesis][label]`).
pub fn nli_scores(
    logits: &[Vec<f32>],
    entailment_id: usize,
    contradiction_id: usize,
    opts: &ZeroShotOptions,
) -> Result<Vec<f32>> {
    use super::text_classification::{apply, ScoreFn};
    if opts.multi_label || opts.candidate_labels.len() == 1 {
        logits
            .iter()
            .map(|l| Ok(apply(ScoreFn::Softmax, &[l[contradiction_id], l[entailment_id]])?[1]))
            .collect()
    } else {
        let ent: Vec<f32> = logits.iter().map(|l| l[entailment_id]).collect();
        apply(ScoreFn::Softmax, &ent)
    }
}

/// Calibrated cosine scores of each text against each hypothesis.
pub fn embedding_scores(
    model: &SentenceTransformer,
    cal: Calibration,
    texts: &[&str],
    hypotheses: &[String],
    multi_label: bool,
) -> Result<Vec<Vec<f32>>> {
    let t = model.encode(texts)?;
    let h = model.encode(hypotheses)?;
    Ok(t.iter()
        .map(|tv| {
            let cos: Vec<f32> = h.iter().map(|hv| cosine_similarity(tv, hv)).collect();
            calibrated(&cos, cal, multi_label)
        })
        .collect())
}

/// Cosines -> scores (see [`Calibration`]).
pub fn calibrated(cos: &[f32], cal: Calibration, multi_label: bool) -> Vec<f32> {
    if multi_label {
        cos.iter()
            .map(|c| 1.0 / (1.0 + (-(c - cal.bias) / cal.scale).exp()))
            .collect()
    } else {
        let z: Vec<f32> = cos.iter().map(|c| c / cal.temperature).collect();
        let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }
}
