//! `pipeline("text-generation")`: continue a prompt (or answer it in the model's chat format)
//! with a GGUF decoder LLM.

use anyhow::Result;
use serde::Serialize;

use crate::generation::sampling::{generate, Generated, GenerationConfig};
use crate::models::llm::CausalLM;

pub const DEFAULT_MODEL: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

pub struct TextGenerationPipeline {
    pub model: CausalLM,
    pub model_id: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct GenerationOutput {
    pub prompt: String,
    pub generated_text: String,
    #[serde(flatten)]
    pub stats: Generated,
}

impl TextGenerationPipeline {
    pub fn new(id: &str) -> Result<Self> {
        let path = std::path::Path::new(id);
        let dir = if path.is_file() {
            path.to_path_buf()
        } else {
            crate::hub::resolve(id)?
        };
        Ok(Self {
            model: CausalLM::from_path(&dir)?,
            model_id: id.to_string(),
        })
    }

    /// The token ids the model sees for `prompt` (`chat`: wrapped in its chat template).
    pub fn prompt_ids(&self, prompt: &str, chat: bool) -> Result<Vec<u32>> {
        if prompt.trim().is_empty() {
            anyhow::bail!("the prompt is empty: give some text to continue")
        }
        let text = if chat {
            let m = &self.model;
            crate::formats::gguf::chat_prompt(
                m.chat_template.as_deref(),
                &m.path,
                &m.tokenizer,
                prompt,
            )?
        } else {
            prompt.to_string()
        };
        self.model.tokenizer.encode(&text, true)
    }

    /// The token ids of a whole conversation in the model's chat format, ready for the
    /// assistant's turn.
    pub fn chat_ids(&self, messages: &[crate::formats::gguf::ChatMessage]) -> Result<Vec<u32>> {
        if let Some(i) = messages.iter().position(|m| m.content.trim().is_empty()) {
            anyhow::bail!("message {} is empty: every message needs some text", i + 1)
        }
        let m = &self.model;
        let text = crate::formats::gguf::chat_prompt_messages(
            m.chat_template.as_deref(),
            &m.path,
            &m.tokenizer,
            messages,
        )?;
        m.tokenizer.encode(&text, true)
    }

    /// Generates for one prompt, streaming text pieces to `on_text`.
    pub fn call(
        &mut self,
        prompt: &str,
        chat: bool,
        cfg: &GenerationConfig,
        on_text: impl FnMut(&str),
    ) -> Result<GenerationOutput> {
        let ids = self.prompt_ids(prompt, chat)?;
        let g = generate(&mut self.model, &ids, cfg, on_text)?;
        Ok(GenerationOutput {
            prompt: prompt.to_string(),
            generated_text: g.text.clone(),
            stats: g,
        })
    }
}
