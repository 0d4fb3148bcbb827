//! `pipeline("text-classification")` / `pipeline("sentiment-analysis")`: label + score per text
//! from any sequence-classification checkpoint (transformers' `TextClassificationPipeline`).

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::models::{AutoModelForSequenceClassification, LoadOptions};
use crate::tokenize::{AutoTokenizer, EncodeOptions, Padding};

/// One label and its score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

/// A text its tokenizer turns mostly into the unknown token is text the model cannot read
/// (another script, say): it still gets a confident-looking label, so say so.
const UNREADABLE_SHARE: f64 = 0.5;

fn warn_unreadable<S: AsRef<str>>(
    enc: &crate::tokenize::BatchEncoding,
    tok: &AutoTokenizer,
    model: &std::path::Path,
    texts: &[S],
) {
    let Some(unk) = tok.unk_token_id() else {
        return;
    };
    let special: std::collections::HashSet<u32> = tok
        .inner()
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, t)| t.special)
        .map(|(id, _)| id)
        .collect();
    for ((ids, mask), text) in enc.input_ids.iter().zip(&enc.attention_mask).zip(texts) {
        // The text's own tokens: not padding, not [CLS] / [SEP] / <s> ...
        let own: Vec<u32> = ids
            .iter()
            .zip(mask)
            .filter(|(i, &m)| m == 1 && (**i == unk || !special.contains(i)))
            .map(|(&i, _)| i)
            .collect();
        let unknown = own.iter().filter(|&&i| i == unk).count();
        if !own.is_empty() && unknown as f64 / own.len() as f64 > UNREADABLE_SHARE {
            let text = text.as_ref();
            let head: String = text.chars().take(40).collect();
            tracing::warn!(
                "{} cannot read {:?}{}: {unknown} of its {} tokens ({:.0}%) are unknown to its \
                 tokenizer, so the label is a guess. Use a model trained on text like this.",
                model.display(),
                head,
                if head.len() < text.len() { "..." } else { "" },
                own.len(),
                100.0 * unknown as f64 / own.len() as f64
            );
        }
    }
}

/// How logits become scores (transformers' `function_to_apply`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreFn {
    Softmax,
    /// One logit per label scored on its own: a single-label regression/binary head, or a
    /// `problem_type: multi_label_classification` model.
    Sigmoid,
}

impl ScoreFn {
    /// transformers' default `function_to_apply`: sigmoid for a one-label head or a
    /// `problem_type: multi_label_classification` model, softmax otherwise.
    pub fn for_model(model: &AutoModelForSequenceClassification) -> Self {
        let multi = model.config.raw["problem_type"].as_str() == Some("multi_label_classification");
        if model.labels.len() == 1 || multi {
            Self::Sigmoid
        } else {
            Self::Softmax
        }
    }
}

pub struct TextClassificationPipeline {
    pub model: AutoModelForSequenceClassification,
    pub tokenizer: AutoTokenizer,
    pub score_fn: ScoreFn,
    pub max_length: usize,
    pub batch_size: usize,
}

impl TextClassificationPipeline {
    /// Loads a fine-tuned classifier (a store id, a model folder or a `lmkit finetune` run).
    pub fn new(id: &str, opts: &LoadOptions) -> Result<Self> {
        let (model, tokenizer, max_length) = super::load_classifier(id, opts)?;
        let missing = model.newly_initialised();
        if !missing.is_empty() {
            bail!(
                "{id} is not a sequence-classification model: its checkpoint has no classification \
                 head ({} missing). Use a fine-tuned classifier, e.g. a `lmkit finetune` run or \
                 lmkit/sentiment-sst2.",
                missing.join(", ")
            )
        }
        let score_fn = ScoreFn::for_model(&model);
        Ok(Self {
            model,
            tokenizer,
            score_fn,
            max_length,
            batch_size: 32,
        })
    }

    /// All labels with scores for each text, best first (ties in label order), in input
    /// order. The one place a classifier's logits become scores: `lmkit predict` and
    /// `lmkit pipeline text-classification` both read them from here, so the two cannot
    /// disagree on softmax versus sigmoid.
    pub fn scores<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<LabelScore>>> {
        self.logits(texts)?
            .into_iter()
            .map(|row| self.labelled(&row, false))
            .collect()
    }

    /// The classifier's logits for each text, in input order (batched by length).
    pub fn logits<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        super::check_texts(texts)?;
        super::in_length_order(texts, self.batch_size, |batch| {
            let enc = self.tokenizer.encode_batch(
                batch,
                EncodeOptions {
                    padding: Padding::Longest,
                    max_length: Some(self.max_length),
                    add_special_tokens: true,
                },
            )?;
            warn_unreadable(&enc, &self.tokenizer, &self.model.dir, batch);
            let out = self.model.forward(&enc.to_input(&Device::Cpu)?, false)?;
            Ok(out.to_vec2::<f32>()?)
        })
    }

    /// One text's logits as labels with scores, best first (ties in label order); `raw`
    /// keeps the logits themselves (TEI's `raw_scores`).
    pub fn labelled(&self, logits: &[f32], raw: bool) -> Result<Vec<LabelScore>> {
        let p = if raw {
            logits.to_vec()
        } else {
            apply(self.score_fn, logits)?
        };
        let mut v: Vec<LabelScore> = self
            .model
            .labels
            .iter()
            .zip(p)
            .map(|(l, s)| LabelScore {
                label: l.clone(),
                score: s,
            })
            .collect();
        v.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(v)
    }

    /// The best label of each text (transformers' default `top_k=1`).
    pub fn call<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<LabelScore>> {
        Ok(self
            .scores(texts)?
            .into_iter()
            .map(|mut v| v.swap_remove(0))
            .collect())
    }
}

/// Softmax or sigmoid of one row of logits, in f32 as transformers computes it.
pub fn apply(f: ScoreFn, logits: &[f32]) -> Result<Vec<f32>> {
    let t = Tensor::new(logits, &Device::Cpu)?.unsqueeze(0)?;
    let p = match f {
        ScoreFn::Softmax => crate::nn::softmax_last_dim(&t)?,
        ScoreFn::Sigmoid => candle_nn::ops::sigmoid(&t)?,
    };
    Ok(p.squeeze(0)?.to_vec1::<f32>()?)
}
