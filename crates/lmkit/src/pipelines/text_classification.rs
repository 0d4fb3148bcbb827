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
    /// The store id this pipeline was asked for.
    pub model_id: String,
    /// Texts mostly in Hangul go to this model instead (the default sentiment pipeline only).
    pub korean: Option<Box<KoreanRoute>>,
}

/// The Korean sentiment default, loaded on the first Korean text. An English model answers
/// Korean text with confident, meaningless labels, so a Korean text is never given to it:
/// without the Korean model the call fails and says how to build it.
pub struct KoreanRoute {
    pub id: String,
    opts: LoadOptions,
    loaded: std::sync::OnceLock<TextClassificationPipeline>,
}

impl KoreanRoute {
    pub fn new(id: &str, opts: &LoadOptions) -> Self {
        Self {
            id: id.to_string(),
            opts: opts.clone(),
            loaded: std::sync::OnceLock::new(),
        }
    }

    fn pipeline(&self, batch_size: usize, inputs: &[usize]) -> Result<&TextClassificationPipeline> {
        if let Some(p) = self.loaded.get() {
            return Ok(p);
        }
        let which = inputs
            .iter()
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(r) = crate::hub::trained(&self.id) {
            let built = crate::hub::store_path(r.id);
            if !built.join("config.json").is_file() {
                bail!(
                    "input {which} is Korean, and the Korean sentiment model {} is not built. \
                     Build it once with `lmkit fetch {}` ({}; about {} minutes on 2 CPU cores), \
                     or pass a model (--model). The English default is not used for Korean text: \
                     it cannot read it.",
                    r.id,
                    r.id,
                    r.description,
                    r.minutes
                )
            }
        }
        let mut p = TextClassificationPipeline::new(&self.id, &self.opts)?;
        p.batch_size = batch_size;
        Ok(self.loaded.get_or_init(|| p))
    }
}

/// Whether most of a text's letters are Hangul (digits, punctuation and spaces don't count).
pub fn mostly_hangul(text: &str) -> bool {
    let (mut hangul, mut letters) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        hangul += usize::from(crate::util::is_hangul(c));
    }
    letters > 0 && hangul * 2 > letters
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
            model_id: id.to_string(),
            korean: None,
        })
    }

    /// Sends texts mostly in Hangul to the Korean model `id` (see [`KoreanRoute`]).
    pub fn with_korean_route(mut self, id: &str, opts: &LoadOptions) -> Self {
        self.korean = Some(Box::new(KoreanRoute::new(id, opts)));
        self
    }

    /// Which model answers `text`: the Korean route's for Korean text, else this one's.
    pub fn model_for(&self, text: &str) -> &str {
        match &self.korean {
            Some(k) if mostly_hangul(text) => &k.id,
            _ => &self.model_id,
        }
    }

    /// All labels with scores for each text, best first (ties in label order), in input
    /// order. The one place a classifier's logits become scores: `lmkit predict` and
    /// `lmkit pipeline text-classification` both read them from here, so the two cannot
    /// disagree on softmax versus sigmoid.
    pub fn scores<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<LabelScore>>> {
        let is_korean: Vec<bool> = match &self.korean {
            Some(_) => texts.iter().map(|t| mostly_hangul(t.as_ref())).collect(),
            None => vec![],
        };
        let (korean, other): (Vec<usize>, Vec<usize>) =
            (0..is_korean.len()).partition(|&i| is_korean[i]);
        let (Some(route), false) = (&self.korean, korean.is_empty()) else {
            return self.own_scores(texts);
        };
        super::check_texts(texts)?;
        let ko = route.pipeline(self.batch_size, &korean)?;
        let pick =
            |idx: &[usize]| -> Vec<&str> { idx.iter().map(|&i| texts[i].as_ref()).collect() };
        let mut out = vec![vec![]; texts.len()];
        for (i, s) in korean.iter().zip(ko.own_scores(&pick(&korean))?) {
            out[*i] = s;
        }
        if !other.is_empty() {
            for (i, s) in other.iter().zip(self.own_scores(&pick(&other))?) {
                out[*i] = s;
            }
        }
        Ok(out)
    }

    fn own_scores<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<LabelScore>>> {
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
