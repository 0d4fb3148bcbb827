//! `pipeline(task, model)`: one object per task. The encoder tasks go through
//! `lmkit::pipelines::Pipeline`; generation, translation and summarization through their own
//! pipelines, loaded on first call (the default translation model depends on the text).

use std::sync::Mutex;

use lmkit::generation::sampling::GenerationConfig;
use lmkit::pipelines::prompted::PromptedPipeline;
use lmkit::pipelines::text2text::Text2TextPipeline;
use lmkit::pipelines::text_generation::TextGenerationPipeline;
use lmkit::pipelines::{PipelineOptions, PipelineOutput, ZeroShotOptions};
use numpy::PyArray2;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::OrPy;
use crate::models::load_options;

enum Seq2Seq {
    Text2Text(Text2TextPipeline),
    Prompted(PromptedPipeline),
}

// One per pipeline object, built once: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Runner {
    Encoder(lmkit::pipelines::Pipeline),
    Generation(TextGenerationPipeline),
    /// Translation and summarization: the model asked for (None: chosen per text) and the one
    /// loaded last.
    Seq2Seq {
        model: Option<String>,
        loaded: Option<(String, Seq2Seq)>,
    },
}

/// (sequence, labels best first, their scores).
type ZeroShotRow = (String, Vec<String>, Vec<f32>);
/// A text's tokens and their vectors (tokens, hidden).
type TokenVectors<'py> = (Vec<String>, Bound<'py, PyArray2<f32>>);

#[pyclass(module = "lmkit._lmkit", frozen)]
pub struct Pipeline {
    #[pyo3(get)]
    task: String,
    runner: Mutex<Runner>,
}

impl Pipeline {
    fn runner(&self) -> std::sync::MutexGuard<'_, Runner> {
        self.runner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn encoder_run(
        &self,
        py: Python<'_>,
        texts: &[String],
        opts: PipelineOptions,
    ) -> PyResult<Vec<PipelineOutput>> {
        py.detach(|| match &*self.runner() {
            Runner::Encoder(p) => p.run(texts, &opts),
            _ => anyhow::bail!("the {} pipeline does not take this call", self.task),
        })
        .or_input()
    }
}

#[pymethods]
impl Pipeline {
    #[new]
    #[pyo3(signature = (task, model=None, precision="fp32", batch_size=None))]
    fn new(
        py: Python<'_>,
        task: String,
        model: Option<String>,
        precision: &str,
        batch_size: Option<usize>,
    ) -> PyResult<Self> {
        if batch_size == Some(0) {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        let generative = matches!(
            task.as_str(),
            "text-generation" | "translation" | "summarization"
        );
        if generative && !matches!(precision, "fp32" | "float32") {
            return Err(PyValueError::new_err(format!(
                "precision={precision:?} applies to the encoder pipelines, not {task}"
            )));
        }
        let opts = load_options(precision)?;
        let runner = py
            .detach(|| -> anyhow::Result<Runner> {
                Ok(match task.as_str() {
                    "text-generation" => Runner::Generation(TextGenerationPipeline::new(
                        model
                            .as_deref()
                            .unwrap_or(lmkit::pipelines::text_generation::DEFAULT_MODEL),
                    )?),
                    "translation" | "summarization" => Runner::Seq2Seq {
                        model: model.clone(),
                        loaded: None,
                    },
                    _ => {
                        let mut p =
                            lmkit::pipelines::pipeline_with(&task, model.as_deref(), &opts)?;
                        if let Some(b) = batch_size {
                            match &mut p {
                                lmkit::pipelines::Pipeline::TextClassification(t) => {
                                    t.batch_size = b
                                }
                                lmkit::pipelines::Pipeline::ZeroShot(z) => z.batch_size = b,
                                lmkit::pipelines::Pipeline::FeatureExtraction(f) => {
                                    f.model.batch_size = b
                                }
                            }
                        }
                        Runner::Encoder(p)
                    }
                })
            })
            .map_err(|e| {
                if e.to_string().starts_with("unknown task") {
                    crate::errors::input(e)
                } else {
                    crate::errors::other(e)
                }
            })?;
        Ok(Self {
            task,
            runner: Mutex::new(runner),
        })
    }

    /// Which model answers (and for zero-shot, by which method).
    fn describe(&self) -> String {
        match &*self.runner() {
            Runner::Encoder(p) => p.describe(),
            Runner::Generation(g) => g.model_id.clone(),
            Runner::Seq2Seq { model, loaded } => match (loaded, model) {
                (Some((id, _)), _) => id.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => "chosen by the text on first call".into(),
            },
        }
    }

    /// Every label with its score per text, best first.
    fn classify(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<Vec<(String, f32)>>> {
        let out = self.encoder_run(
            py,
            &texts,
            PipelineOptions {
                top_k: Some(usize::MAX),
                ..Default::default()
            },
        )?;
        Ok(out
            .into_iter()
            .map(|o| match o {
                PipelineOutput::Classification { top_k, .. } => top_k
                    .unwrap_or_default()
                    .into_iter()
                    .map(|ls| (ls.label, ls.score))
                    .collect(),
                _ => vec![],
            })
            .collect())
    }

    #[pyo3(signature = (texts, candidate_labels, hypothesis_template, multi_label=false))]
    fn zero_shot(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        candidate_labels: Vec<String>,
        hypothesis_template: String,
        multi_label: bool,
    ) -> PyResult<Vec<ZeroShotRow>> {
        let out = self.encoder_run(
            py,
            &texts,
            PipelineOptions {
                zero_shot: ZeroShotOptions {
                    candidate_labels,
                    hypothesis_template,
                    multi_label,
                },
                ..Default::default()
            },
        )?;
        Ok(out
            .into_iter()
            .filter_map(|o| match o {
                PipelineOutput::ZeroShot(z) => Some((z.sequence, z.labels, z.scores)),
                _ => None,
            })
            .collect())
    }

    /// Pooled sentence vectors (rows, hidden).
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let rows: Vec<Vec<f32>> = self
            .encoder_run(py, &texts, PipelineOptions::default())?
            .into_iter()
            .filter_map(|o| match o {
                PipelineOutput::Embedding { embedding, .. } => Some(embedding),
                _ => None,
            })
            .collect();
        Ok(PyArray2::from_vec2(py, &rows)?)
    }

    /// Per text: its tokens and their vectors (tokens, hidden).
    fn token_embeddings<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
    ) -> PyResult<Vec<TokenVectors<'py>>> {
        let out = self.encoder_run(
            py,
            &texts,
            PipelineOptions {
                token_level: true,
                ..Default::default()
            },
        )?;
        out.into_iter()
            .filter_map(|o| match o {
                PipelineOutput::TokenEmbeddings {
                    tokens, embeddings, ..
                } => Some((tokens, embeddings)),
                _ => None,
            })
            .map(|(t, e)| Ok((t, PyArray2::from_vec2(py, &e)?)))
            .collect()
    }

    /// Continues one prompt; returns the new text only.
    #[pyo3(signature = (prompt, max_new_tokens=64, temperature=0.0, top_k=None, top_p=None, repetition_penalty=1.0, seed=42, chat=false))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: String,
        max_new_tokens: usize,
        temperature: f64,
        top_k: Option<usize>,
        top_p: Option<f64>,
        repetition_penalty: f32,
        seed: u64,
        chat: bool,
    ) -> PyResult<String> {
        if max_new_tokens == 0 {
            return Err(PyValueError::new_err("max_new_tokens must be at least 1"));
        }
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(PyValueError::new_err("temperature must be a number >= 0"));
        }
        if top_k == Some(0) {
            return Err(PyValueError::new_err("top_k must be at least 1"));
        }
        if top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            return Err(PyValueError::new_err("top_p must be in (0, 1]"));
        }
        let cfg = GenerationConfig {
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            seed,
            ..Default::default()
        };
        py.detach(|| match &mut *self.runner() {
            Runner::Generation(g) => Ok(g.call(&prompt, chat, &cfg, |_| {})?.generated_text),
            _ => anyhow::bail!("the {} pipeline does not generate", self.task),
        })
        .or_input()
    }

    /// Translates (src/tgt: language codes such as "en", "ko") or summarizes one text.
    #[pyo3(signature = (text, src="en", tgt="ko", max_new_tokens=None, num_beams=None))]
    fn text2text(
        &self,
        py: Python<'_>,
        text: String,
        src: &str,
        tgt: &str,
        max_new_tokens: Option<usize>,
        num_beams: Option<usize>,
    ) -> PyResult<String> {
        if max_new_tokens == Some(0) || num_beams == Some(0) {
            return Err(PyValueError::new_err(
                "max_new_tokens and num_beams must be at least 1",
            ));
        }
        let task = self.task.clone();
        py.detach(|| -> anyhow::Result<String> {
            let mut r = self.runner();
            let Runner::Seq2Seq { model, loaded } = &mut *r else {
                anyhow::bail!("the {task} pipeline does not translate or summarize")
            };
            lmkit::pipelines::check_texts(&[&text])?;
            let want = match model {
                Some(m) => m.clone(),
                None => lmkit::pipelines::prompted::default_model(&task, &[&text]).to_string(),
            };
            if loaded.as_ref().is_none_or(|(id, _)| *id != want) {
                let p = if lmkit::pipelines::text2text::is_seq2seq(&want) {
                    Seq2Seq::Text2Text(Text2TextPipeline::new(&want)?)
                } else {
                    Seq2Seq::Prompted(PromptedPipeline::new(&want)?)
                };
                *loaded = Some((want, p));
            }
            let (_, p) = loaded.as_mut().expect("loaded above");
            let out = match p {
                Seq2Seq::Text2Text(t) => {
                    let adjust = |s: &mut lmkit::generation::beam::SearchConfig| {
                        if let Some(n) = max_new_tokens {
                            s.max_new_tokens = Some(n);
                        }
                        if let Some(n) = num_beams {
                            s.num_beams = n;
                        }
                    };
                    if task == "translation" {
                        t.translate(&text, src, tgt, adjust)?
                    } else {
                        t.summarize(&text, adjust)?
                    }
                }
                Seq2Seq::Prompted(pp) => {
                    pp.max_new_tokens = max_new_tokens.unwrap_or(64);
                    if task == "translation" {
                        pp.translate(&text, src, tgt)?
                    } else {
                        pp.summarize(&text)?
                    }
                }
            };
            Ok(out.output)
        })
        .or_input()
    }
}
