//! `translation` and `summarization` without a seq2seq checkpoint (none can be had here):
//! a decoder LLM prompted for the task. Gemma 3 270M (base, multilingual) gets a few-shot
//! prompt; SmolLM2-135M-Instruct (English only) gets an instruction in its chat format. The
//! quality of these small models is measured, not assumed (README: BLEU / ROUGE).

use anyhow::{bail, Result};

use crate::generation::sampling::GenerationConfig;
use crate::pipelines::text_generation::TextGenerationPipeline;

pub const MULTILINGUAL_LLM: &str = "google/gemma-3-270m";
pub const ENGLISH_LLM: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

/// Language codes the prompts know, with the names used in them.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("ko", "Korean"),
    ("de", "German"),
    ("fr", "French"),
    ("es", "Spanish"),
    ("ro", "Romanian"),
    ("ru", "Russian"),
    ("ja", "Japanese"),
    ("zh", "Chinese"),
];

/// One-line examples per language for the few-shot translation prompt.
const EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "en",
        "The weather is nice today.",
        "I will meet my friend tomorrow.",
    ),
    (
        "ko",
        "오늘은 날씨가 좋습니다.",
        "나는 내일 친구를 만날 것입니다.",
    ),
    (
        "de",
        "Das Wetter ist heute schön.",
        "Ich werde morgen meinen Freund treffen.",
    ),
    (
        "fr",
        "Il fait beau aujourd'hui.",
        "Je vais voir mon ami demain.",
    ),
    (
        "es",
        "Hoy hace buen tiempo.",
        "Mañana voy a ver a mi amigo.",
    ),
    (
        "ro",
        "Vremea este frumoasă astăzi.",
        "Mâine mă voi întâlni cu prietenul meu.",
    ),
    (
        "ru",
        "Сегодня хорошая погода.",
        "Завтра я встречусь с другом.",
    ),
    ("ja", "今日は天気がいいです。", "明日、友達に会います。"),
    ("zh", "今天天气很好。", "我明天要见我的朋友。"),
];

/// The English name of a language code the prompts know (en -> English).
pub fn language_name(code: &str) -> Result<&'static str> {
    LANGUAGES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "unknown language {code:?}; known: {}",
                LANGUAGES
                    .iter()
                    .map(|(c, _)| *c)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The few-shot prompt for translating `text` from `src` to `tgt`.
pub fn translation_prompt(src: &str, tgt: &str, text: &str) -> Result<String> {
    if src == tgt {
        bail!("source and target language are both {src:?}")
    }
    let (s, t) = (language_name(src)?, language_name(tgt)?);
    let ex = |c: &str| EXAMPLES.iter().find(|e| e.0 == c).unwrap();
    let (es, et) = (ex(src), ex(tgt));
    Ok(format!(
        "Translate {s} to {t}.\n\n{s}: {}\n{t}: {}\n\n{s}: {}\n{t}: {}\n\n{s}: {}\n{t}:",
        es.1,
        et.1,
        es.2,
        et.2,
        text.trim()
    ))
}

/// The model `pipeline("translation" | "summarization")` uses when none is given: the English
/// LLM summarizes English text, the multilingual one does everything else.
pub fn default_model<S: AsRef<str>>(task: &str, texts: &[S]) -> &'static str {
    let english = texts.iter().all(|t| t.as_ref().is_ascii());
    if task == "summarization" && english {
        ENGLISH_LLM
    } else {
        MULTILINGUAL_LLM
    }
}

/// Translation / summarization by prompting an LLM; the output names the model and method.
pub struct PromptedPipeline {
    pub llm: TextGenerationPipeline,
    pub max_new_tokens: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Seq2SeqOutput {
    pub text: String,
    pub output: String,
    pub model: String,
    pub method: String,
}

impl PromptedPipeline {
    pub fn new(model: &str) -> Result<Self> {
        Ok(Self {
            llm: TextGenerationPipeline::new(model)?,
            max_new_tokens: 128,
        })
    }

    fn run(&mut self, prompt: &str, chat: bool, text: &str, method: &str) -> Result<Seq2SeqOutput> {
        let cfg = GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            repetition_penalty: 1.1,
            stop: vec!["\n".into()],
            ..Default::default()
        };
        let out = self.llm.call(prompt, chat, &cfg, |_| {})?;
        Ok(Seq2SeqOutput {
            text: text.to_string(),
            output: out.generated_text.trim().to_string(),
            model: self.llm.model_id.clone(),
            method: method.into(),
        })
    }

    pub fn translate(&mut self, text: &str, src: &str, tgt: &str) -> Result<Seq2SeqOutput> {
        if text.trim().is_empty() {
            bail!("the text to translate is empty")
        }
        let p = translation_prompt(src, tgt, text)?;
        self.run(&p, false, text, "few-shot prompt")
    }

    /// One-sentence summary: an instruction in the chat format for instruct models, a
    /// "TL;DR" continuation for base models.
    pub fn summarize(&mut self, text: &str) -> Result<Seq2SeqOutput> {
        if text.trim().is_empty() {
            bail!("the text to summarize is empty")
        }
        let instruct = self.llm.model.chat_template.is_some();
        if instruct {
            let p = format!(
                "Summarize the following text in one sentence.\n\n{}",
                text.trim()
            );
            self.run(&p, true, text, "chat instruction")
        } else {
            let korean = text.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c));
            let cue = if korean {
                "한 문장 요약:"
            } else {
                "TL;DR:"
            };
            let p = format!("{}\n\n{cue}", text.trim());
            self.run(&p, false, text, "TL;DR prompt")
        }
    }
}
