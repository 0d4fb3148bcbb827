//! Sentence embeddings with sentence-transformers semantics: encoder -> pooling over the
//! attention mask -> L2 normalisation when the model's modules.json has a Normalize module.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};

use crate::models::{bert::mean_pool, AutoModel, LoadOptions};
use crate::tokenize::{AutoTokenizer, EncodeOptions, Padding};

/// How token vectors become one sentence vector (sentence-transformers' `Pooling`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
    Max,
}

/// A sentence-embedding model, as sentence-transformers' `SentenceTransformer`
/// (`sentence_transformers/SentenceTransformer.py`): `SentenceTransformer(id).encode(texts)`.
pub struct SentenceTransformer {
    pub model: AutoModel,
    pub tokenizer: AutoTokenizer,
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: usize,
    pub batch_size: usize,
    /// Named prefixes from config_sentence_transformers.json (e5: "query: ", "passage: ").
    pub prompts: std::collections::BTreeMap<String, String>,
    /// The prompt `encode` adds when none is named.
    pub default_prompt_name: Option<String>,
}

impl SentenceTransformer {
    pub fn from_pretrained(id: &str, opts: &LoadOptions) -> Result<Self> {
        Self::from_folder(&crate::hub::resolve(id)?, opts)
    }

    pub fn from_folder(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let model = AutoModel::from_folder(dir, opts)?;
        let tokenizer = AutoTokenizer::from_folder(dir)?;
        let (mut pooling, mut normalize) = (Pooling::Mean, false);
        let modules = dir.join("modules.json");
        if modules.is_file() {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&modules)?)
                .with_context(|| format!("{}: invalid JSON", modules.display()))?;
            for m in v.as_array().into_iter().flatten() {
                let ty = m["type"].as_str().unwrap_or("");
                if ty.ends_with("Normalize") {
                    normalize = true;
                }
                if ty.ends_with("Pooling") {
                    let p = dir
                        .join(m["path"].as_str().unwrap_or(""))
                        .join("config.json");
                    if let Ok(text) = std::fs::read_to_string(&p) {
                        let c: serde_json::Value = serde_json::from_str(&text)
                            .with_context(|| format!("{}: invalid JSON", p.display()))?;
                        pooling = if c["pooling_mode_cls_token"].as_bool() == Some(true) {
                            Pooling::Cls
                        } else if c["pooling_mode_max_tokens"].as_bool() == Some(true) {
                            Pooling::Max
                        } else {
                            Pooling::Mean
                        };
                    }
                }
            }
        }
        let sb = dir.join("sentence_bert_config.json");
        let max_seq_length = std::fs::read_to_string(&sb)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map(|v| v as usize)
            .unwrap_or(tokenizer.model_max_length)
            .min(model.config.arch.max_positions());
        let st_cfg = dir.join("config_sentence_transformers.json");
        let (mut prompts, mut default_prompt_name) = (Default::default(), None);
        if st_cfg.is_file() {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&st_cfg)?)
                .with_context(|| format!("{}: invalid JSON", st_cfg.display()))?;
            if let Some(p) = v.get("prompts").filter(|p| !p.is_null()) {
                prompts = serde_json::from_value(p.clone()).with_context(|| {
                    format!(
                        "{}: \"prompts\" must map names to strings",
                        st_cfg.display()
                    )
                })?;
            }
            default_prompt_name = v["default_prompt_name"].as_str().map(String::from);
        }
        Ok(Self {
            model,
            tokenizer,
            pooling,
            normalize,
            max_seq_length,
            batch_size: 32,
            prompts,
            default_prompt_name,
        })
    }

    /// The text with the named (or default) prompt in front; a text that already starts with
    /// one of the model's prompts is left as it is.
    pub fn with_prompt(&self, text: &str, prompt_name: Option<&str>) -> String {
        let name = prompt_name.or(self.default_prompt_name.as_deref());
        match name.and_then(|n| self.prompts.get(n)) {
            Some(p)
                if !self
                    .prompts
                    .values()
                    .any(|q| !q.is_empty() && text.starts_with(q.as_str())) =>
            {
                format!("{p}{text}")
            }
            _ => text.to_string(),
        }
    }

    /// `encode(texts, prompt_name="passage")`: embeddings with a named prompt.
    pub fn encode_with_prompt<S: AsRef<str>>(
        &self,
        texts: &[S],
        prompt_name: Option<&str>,
    ) -> Result<Vec<Vec<f32>>> {
        if let Some(n) = prompt_name {
            if !self.prompts.contains_key(n) {
                bail!(
                    "this model has no prompt named {n:?} (it has: {})",
                    self.prompts.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }
        }
        let texts: Vec<String> = texts
            .iter()
            .map(|t| self.with_prompt(t.as_ref(), prompt_name))
            .collect();
        self.encode_raw(&texts)
    }

    /// Embeds texts in batches (sorted by length so little compute goes to padding); the
    /// output keeps the input order.
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        self.encode_with_prompt(texts, None)
    }

    fn encode_raw<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].as_ref().len()));
        let mut out = vec![vec![]; texts.len()];
        for chunk in order.chunks(self.batch_size.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
            let t = self.encode_batch(&batch)?;
            for (row, &i) in t.to_vec2::<f32>()?.into_iter().zip(chunk) {
                out[i] = row;
            }
        }
        Ok(out)
    }

    /// One padded batch -> (batch, hidden) tensor.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Tensor> {
        if texts.is_empty() {
            bail!("no texts to embed")
        }
        let enc = self.tokenizer.encode_batch(
            texts,
            EncodeOptions {
                padding: Padding::Longest,
                max_length: Some(self.max_seq_length),
                add_special_tokens: true,
            },
        )?;
        let input = enc.to_input(&Device::Cpu)?;
        let hidden = self.model.forward(&input)?;
        let pooled = match self.pooling {
            Pooling::Mean => mean_pool(&hidden, &input.attention_mask)?,
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Max => {
                let m = input
                    .attention_mask
                    .to_dtype(hidden.dtype())?
                    .unsqueeze(D::Minus1)?;
                // Padding gets -1e9 so it never wins the max (as sentence-transformers).
                let masked = (hidden.broadcast_mul(&m)?
                    + ((m.ones_like()? - &m)? * -1e9)?.broadcast_as(hidden.shape())?)?;
                masked.max(1)?
            }
        };
        Ok(if self.normalize {
            l2_normalize(&pooled)?
        } else {
            pooled
        })
    }
}

/// Rows divided by their L2 norm (zero rows stay zero).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        dot += (*x as f64) * (*y as f64);
        na += (*x as f64).powi(2);
        nb += (*y as f64).powi(2);
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot / (na.sqrt() * nb.sqrt())) as f32
}
