//! `pipeline("feature-extraction")`: a sentence vector per text (the model's sentence-transformers
//! pooling, or mean pooling), or with `token_level` the last hidden state per token as
//! transformers' pipeline returns it.

use anyhow::Result;
use candle_core::Device;

use crate::embed::SentenceTransformer;
use crate::models::LoadOptions;
use crate::tokenize::{EncodeOptions, Padding};

pub struct FeatureExtractionPipeline {
    pub model: SentenceTransformer,
    pub model_id: String,
}

impl FeatureExtractionPipeline {
    pub fn new(id: &str, opts: &LoadOptions) -> Result<Self> {
        Ok(Self {
            model: SentenceTransformer::from_folder(&super::model_dir(id)?, opts)?,
            model_id: id.to_string(),
        })
    }

    /// Sentence embeddings, input order (e5 models get their default "query: " prompt).
    pub fn call<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        super::check_texts(texts)?;
        self.model.encode(texts)
    }

    /// Tokens and their last-hidden-state vectors, one text at a time (no padding).
    #[allow(clippy::type_complexity)]
    pub fn token_embeddings<S: AsRef<str>>(
        &self,
        texts: &[S],
    ) -> Result<Vec<(Vec<String>, Vec<Vec<f32>>)>> {
        super::check_texts(texts)?;
        texts
            .iter()
            .map(|t| {
                let text = self.model.with_prompt(t.as_ref(), None);
                let enc = self.model.tokenizer.encode_batch(
                    &[text],
                    EncodeOptions {
                        padding: Padding::None,
                        max_length: Some(self.model.max_seq_length),
                        add_special_tokens: true,
                    },
                )?;
                let h = self.model.model.forward(&enc.to_input(&Device::Cpu)?)?;
                Ok((enc.tokens[0].clone(), h.squeeze(0)?.to_vec2::<f32>()?))
            })
            .collect()
    }
}
