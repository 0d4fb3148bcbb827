//! `translation` and `summarization` with a seq2seq checkpoint (Marian / opus-mt, BART, T5),
//! following the conventions of transformers' (v4) `TranslationPipeline` and
//! `SummarizationPipeline`: the task's entry in config.json `task_specific_params` gives the
//! input prefix and generation settings (t5-small: "summarize: ", 4 beams, ...); T5 without
//! one gets its pre-training prefixes ("translate English to German: "); a multilingual Marian
//! model gets its target-language tag (">>ko<< ") when its vocabulary has one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;

use crate::formats::spm::MarianTokenizer;
use crate::generation::beam::{generate, SearchConfig};
use crate::models::seq2seq::{load_folder, model_type, Seq2SeqModel, SEQ2SEQ_TYPES};
use crate::pipelines::prompted::{language_name, Seq2SeqOutput};
use crate::tokenize::{AutoTokenizer, EncodeOptions, Padding};

/// A tokenizer.json (T5, BART, converted Marian), or Marian's SentencePiece files.
pub enum Seq2SeqTokenizer {
    Auto(AutoTokenizer),
    Marian(MarianTokenizer),
}

impl Seq2SeqTokenizer {
    pub fn from_folder(dir: &Path, model_type: &str) -> Result<Self> {
        if model_type == "marian"
            && !dir.join("tokenizer.json").is_file()
            && dir.join("source.spm").is_file()
        {
            return Ok(Self::Marian(MarianTokenizer::from_folder(dir)?));
        }
        Ok(Self::Auto(AutoTokenizer::from_folder(dir)?))
    }

    /// Ids with special tokens, cut to `max` (the end-of-sequence token kept); and how many
    /// tokens were cut.
    pub fn encode(&self, text: &str, max: usize) -> Result<(Vec<u32>, usize)> {
        match self {
            Self::Auto(t) => {
                let enc = t.encode_batch(
                    &[text],
                    EncodeOptions {
                        padding: Padding::None,
                        max_length: Some(max),
                        add_special_tokens: true,
                    },
                )?;
                Ok((enc.input_ids[0].clone(), enc.truncated[0]))
            }
            Self::Marian(t) => {
                let (_, mut ids) = t.encode(text)?;
                let n = ids.len();
                if n > max {
                    ids.truncate(max.saturating_sub(1));
                    ids.push(t.eos_id);
                }
                Ok((ids, n.saturating_sub(max)))
            }
        }
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        match self {
            Self::Auto(t) => t.decode(ids, skip_special_tokens),
            Self::Marian(t) => Ok(t.decode(ids, skip_special_tokens)),
        }
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Self::Auto(t) => t.token_to_id(token),
            Self::Marian(t) => t.token_to_id(token),
        }
    }

    fn model_max_length(&self) -> usize {
        match self {
            Self::Auto(t) => t.model_max_length,
            Self::Marian(_) => 512,
        }
    }
}

pub struct Text2TextPipeline {
    pub model: Box<dyn Seq2SeqModel>,
    pub tokenizer: Seq2SeqTokenizer,
    /// The checkpoint's generation defaults; per-call settings go through [`Self::search_for`].
    pub search: SearchConfig,
    pub model_id: String,
    pub model_type: String,
    pub dir: PathBuf,
    task_params: serde_json::Value,
    /// The longest input in tokens; longer ones are cut.
    pub max_input: usize,
}

/// Whether `model` (a store id or folder) is a seq2seq checkpoint lmkit can run.
pub fn is_seq2seq(model: &str) -> bool {
    let Ok(dir) = crate::hub::resolve(model) else {
        return false;
    };
    matches!(model_type(&dir), Ok(Some(t)) if SEQ2SEQ_TYPES.contains(&t.as_str()))
}

impl Text2TextPipeline {
    pub fn new(model: &str) -> Result<Self> {
        let dir = crate::hub::resolve(model)?;
        let cfg = crate::util::read_json_if_exists(&dir.join("config.json"))?;
        let mt = cfg["model_type"].as_str().unwrap_or_default().to_string();
        if !SEQ2SEQ_TYPES.contains(&mt.as_str()) {
            bail!(
                "{} is a {mt:?} model, not a seq2seq one ({}); translation and summarization \
                 with a decoder LLM go through the prompted pipeline",
                dir.display(),
                SEQ2SEQ_TYPES.join(", ")
            )
        }
        let tokenizer = Seq2SeqTokenizer::from_folder(&dir, &mt)
            .with_context(|| format!("loading the tokenizer of {}", dir.display()))?;
        let max_input = match mt.as_str() {
            "t5" => tokenizer.model_max_length().min(512),
            _ => cfg["max_position_embeddings"].as_u64().unwrap_or(1024) as usize,
        };
        Ok(Self {
            model: load_folder(&dir, &Device::Cpu)?,
            search: SearchConfig::from_folder(&dir)?,
            tokenizer,
            model_id: model.to_string(),
            model_type: mt,
            task_params: cfg["task_specific_params"].clone(),
            max_input,
            dir,
        })
    }

    /// The generation settings of a task: the checkpoint's, then the task's entry in
    /// `task_specific_params`.
    pub fn search_for(&self, task: &str) -> Result<SearchConfig> {
        let mut s = self.search.clone();
        let p = &self.task_params[task];
        if p.is_object() {
            s.update(p).with_context(|| {
                format!("task_specific_params.{task} in {}", self.dir.display())
            })?;
        }
        Ok(s)
    }

    /// The input prefix for `task` (see the module docs).
    pub fn prefix(&self, task: &str, src: &str, tgt: &str) -> Result<String> {
        if let Some(p) = self.task_params[task]["prefix"].as_str() {
            return Ok(p.to_string());
        }
        if self.model_type == "t5" {
            if task == "summarization" {
                return Ok("summarize: ".into());
            }
            return Ok(format!(
                "translate {} to {}: ",
                language_name(src)?,
                language_name(tgt)?
            ));
        }
        if task.starts_with("translation") {
            let tag = format!(">>{tgt}<<");
            if self.tokenizer.token_to_id(&tag).is_some() {
                return Ok(format!("{tag} "));
            }
        }
        Ok(String::new())
    }

    /// Encodes `prefix + text`, generates, decodes without special tokens.
    pub fn run(
        &self,
        text: &str,
        prefix: &str,
        search: &SearchConfig,
        method: &str,
    ) -> Result<Seq2SeqOutput> {
        if text.trim().is_empty() {
            bail!("the text is empty")
        }
        let (ids, cut) = self
            .tokenizer
            .encode(&format!("{prefix}{text}"), self.max_input)?;
        if cut > 0 {
            eprintln!(
                "warning: the input was {} tokens, longer than the model's {}; cut to fit",
                ids.len() + cut,
                self.max_input
            );
        }
        let out = generate(self.model.as_ref(), &ids, search)?;
        Ok(Seq2SeqOutput {
            text: text.to_string(),
            output: self.tokenizer.decode(&out.ids, true)?.trim().to_string(),
            model: self.model_id.clone(),
            method: match search.num_beams {
                1 => format!("{method}, {} greedy", self.model_type),
                n => format!("{method}, {} beam search ({n} beams)", self.model_type),
            },
        })
    }

    /// `translation_{src}_to_{tgt}`; `adjust` changes the settings (CLI flags) last.
    pub fn translate(
        &self,
        text: &str,
        src: &str,
        tgt: &str,
        adjust: impl Fn(&mut SearchConfig),
    ) -> Result<Seq2SeqOutput> {
        if src == tgt {
            bail!("source and target language are both {src:?}")
        }
        let task = format!("translation_{src}_to_{tgt}");
        let mut s = self.search_for(&task)?;
        adjust(&mut s);
        let prefix = self.prefix(&task, src, tgt)?;
        self.run(text, &prefix, &s, "seq2seq")
    }

    pub fn summarize(
        &self,
        text: &str,
        adjust: impl Fn(&mut SearchConfig),
    ) -> Result<Seq2SeqOutput> {
        let mut s = self.search_for("summarization")?;
        adjust(&mut s);
        let prefix = self.prefix("summarization", "", "")?;
        self.run(text, &prefix, &s, "seq2seq")
    }
}
