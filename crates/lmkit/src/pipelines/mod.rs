//! `pipeline(task, model)`: the course's first cell. Each task is a struct you can also build
//! directly; [`pipeline`] picks one by task name and fills in the default model.
//!
//! ```no_run
//! use lmkit::pipelines::{pipeline, PipelineOptions};
//! let classifier = pipeline("sentiment-analysis", None)?;
//! let out = classifier.run(&["I have a dream.", "I hate this so much!"], &PipelineOptions::default())?;
//! # anyhow::Ok(())
//! ```

pub mod feature_extraction;
pub mod prompted;
pub mod text2text;
pub mod text_classification;
pub mod text_generation;
pub mod zero_shot;

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::models::{AutoModelForSequenceClassification, LoadOptions};
use crate::tokenize::AutoTokenizer;

pub use feature_extraction::FeatureExtractionPipeline;
pub use text_classification::{LabelScore, TextClassificationPipeline};
pub use zero_shot::{ZeroShotClassificationPipeline, ZeroShotOptions, ZeroShotOutput};

/// The sentiment-analysis default: made by lmkit (`lmkit fetch lmkit/sentiment-sst2`).
pub const DEFAULT_SENTIMENT_MODEL: &str = "lmkit/sentiment-sst2";
/// The default for texts mostly in Hangul (`lmkit fetch lmkit/sentiment-nsmc`).
pub const DEFAULT_KOREAN_SENTIMENT_MODEL: &str = "lmkit/sentiment-nsmc";
pub const DEFAULT_FEATURE_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

pub const TASKS: &[&str] = &[
    "sentiment-analysis",
    "text-classification",
    "zero-shot-classification",
    "feature-extraction",
    "text-generation",
    "translation",
    "summarization",
];

/// Per-call settings (the keyword arguments of a transformers pipeline call).
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Classification: return this many labels per text, best first (None: the best one).
    pub top_k: Option<usize>,
    /// Zero-shot: candidate labels, template, multi-label.
    pub zero_shot: ZeroShotOptions,
    /// Feature extraction: token vectors instead of the pooled sentence vector.
    pub token_level: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            top_k: None,
            zero_shot: ZeroShotOptions::new(Vec::<String>::new()),
            token_level: false,
        }
    }
}

/// One text's result; serialises to the JSON lines of `lmkit pipeline --json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PipelineOutput {
    Classification {
        text: String,
        label: String,
        score: f32,
        #[serde(skip_serializing_if = "Option::is_none")]
        top_k: Option<Vec<LabelScore>>,
        /// The model that answered this text, when the pipeline chooses per text (the
        /// default sentiment pipeline routes by script).
        #[serde(skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    ZeroShot(ZeroShotOutput),
    Embedding {
        text: String,
        embedding: Vec<f32>,
    },
    TokenEmbeddings {
        text: String,
        tokens: Vec<String>,
        embeddings: Vec<Vec<f32>>,
    },
}

// One per task, built once: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Pipeline {
    TextClassification(TextClassificationPipeline),
    ZeroShot(ZeroShotClassificationPipeline),
    FeatureExtraction(FeatureExtractionPipeline),
}

/// transformers' `pipeline(task, model=...)`. `model: None` takes the task's default.
pub fn pipeline(task: &str, model: Option<&str>) -> Result<Pipeline> {
    pipeline_with(task, model, &LoadOptions::default())
}

/// [`pipeline`] with how to load the model (`LoadOptions::int8(true)`: int8 encoder
/// projections, faster on the CPU at a small quantization error; README, "int8 inference").
pub fn pipeline_with(task: &str, model: Option<&str>, opts: &LoadOptions) -> Result<Pipeline> {
    Ok(match task {
        "sentiment-analysis" | "text-classification" => Pipeline::TextClassification(match model {
            Some(m) => TextClassificationPipeline::new(m, opts)?,
            // The defaults by script: Korean text to the Korean model, the rest to English.
            None => TextClassificationPipeline::new(DEFAULT_SENTIMENT_MODEL, opts)?
                .with_korean_route(DEFAULT_KOREAN_SENTIMENT_MODEL, opts),
        }),
        "zero-shot-classification" => {
            Pipeline::ZeroShot(ZeroShotClassificationPipeline::new(model, opts)?)
        }
        "feature-extraction" => Pipeline::FeatureExtraction(FeatureExtractionPipeline::new(
            model.unwrap_or(DEFAULT_FEATURE_MODEL),
            opts,
        )?),
        "text-generation" => bail!(
            "text-generation streams one prompt at a time: use \
             pipelines::text_generation::TextGenerationPipeline (CLI: `lmkit pipeline text-generation`)"
        ),
        "translation" | "summarization" => bail!(
            "{task} runs one text at a time: use pipelines::text2text::Text2TextPipeline \
             with a Marian/BART/T5 checkpoint, or pipelines::prompted::PromptedPipeline \
             to prompt an LLM (CLI: `lmkit pipeline {task}`)"
        ),
        other => bail!("unknown task {other:?}; available: {}", TASKS.join(", ")),
    })
}

impl Pipeline {
    /// Runs the pipeline on texts; one output per text, in input order.
    pub fn run<S: AsRef<str>>(
        &self,
        texts: &[S],
        opts: &PipelineOptions,
    ) -> Result<Vec<PipelineOutput>> {
        let text = |i: usize| texts[i].as_ref().to_string();
        Ok(match self {
            Self::TextClassification(p) => p
                .scores(texts)?
                .into_iter()
                .enumerate()
                .map(|(i, mut all)| {
                    let best = all[0].clone();
                    let top_k = opts.top_k.map(|k| {
                        all.truncate(k.max(1));
                        all
                    });
                    PipelineOutput::Classification {
                        text: text(i),
                        label: best.label,
                        score: best.score,
                        top_k,
                        model: p
                            .korean
                            .as_ref()
                            .map(|_| p.model_for(texts[i].as_ref()).to_string()),
                    }
                })
                .collect(),
            Self::ZeroShot(p) => p
                .call(texts, &opts.zero_shot)?
                .into_iter()
                .map(PipelineOutput::ZeroShot)
                .collect(),
            Self::FeatureExtraction(p) if opts.token_level => p
                .token_embeddings(texts)?
                .into_iter()
                .enumerate()
                .map(
                    |(i, (tokens, embeddings))| PipelineOutput::TokenEmbeddings {
                        text: text(i),
                        tokens,
                        embeddings,
                    },
                )
                .collect(),
            Self::FeatureExtraction(p) => p
                .call(texts)?
                .into_iter()
                .enumerate()
                .map(|(i, embedding)| PipelineOutput::Embedding {
                    text: text(i),
                    embedding,
                })
                .collect(),
        })
    }

    /// Which model (and for zero-shot, which method) produces the output.
    pub fn describe(&self) -> String {
        match self {
            Self::TextClassification(p) => match &p.korean {
                Some(k) => format!("{} (Korean text: {})", p.model.dir.display(), k.id),
                None => p.model.dir.display().to_string(),
            },
            Self::ZeroShot(p) => format!("{} ({} method)", p.model_id, p.method_name()),
            Self::FeatureExtraction(p) => p.model_id.clone(),
        }
    }
}

/// A `lmkit finetune` run folder (its `model/`), else whatever the store resolves.
pub fn model_dir(id: &str) -> Result<PathBuf> {
    let in_run = std::path::Path::new(id).join("model");
    if in_run.join("config.json").is_file() {
        return Ok(in_run);
    }
    crate::hub::resolve(id)
}

/// A fine-tuned classifier (a store id, a model folder or a `lmkit finetune` run) with its
/// tokenizer and the longest input both take, or an error that says what the task needs.
fn load_classifier(
    id: &str,
    opts: &LoadOptions,
) -> Result<(AutoModelForSequenceClassification, AutoTokenizer, usize)> {
    let dir = model_dir(id)?;
    let model = AutoModelForSequenceClassification::load(&dir, None, opts).map_err(|e| {
        anyhow::anyhow!(
            "{id} cannot be loaded as a sequence-classification model: {e:#}. This task needs a \
             fine-tuned classifier (config.json with id2label and classifier weights), e.g. a \
             `lmkit finetune` run or lmkit/sentiment-sst2."
        )
    })?;
    let tokenizer = AutoTokenizer::from_folder(&dir)?;
    let max_length = tokenizer
        .model_max_length
        .min(model.config.arch.max_positions());
    Ok((model, tokenizer, max_length))
}

/// Refuses an empty batch and empty texts, naming the offending input.
pub fn check_texts<S: AsRef<str>>(texts: &[S]) -> Result<()> {
    if texts.is_empty() {
        bail!("no input texts: give at least one")
    }
    if let Some(i) = texts.iter().position(|t| t.as_ref().trim().is_empty()) {
        bail!("input {} is empty: every input needs some text", i + 1)
    }
    Ok(())
}

/// Runs `f` on batches of texts sorted by length (little padding) and returns its rows in
/// the input order.
pub fn in_length_order<S: AsRef<str>, T: Clone + Default>(
    texts: &[S],
    batch_size: usize,
    mut f: impl FnMut(&[&str]) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(texts[i].as_ref().len()));
    let mut out = vec![T::default(); texts.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
        for (row, &i) in f(&batch)?.into_iter().zip(chunk) {
            out[i] = row;
        }
    }
    Ok(out)
}
