//! Text generation with a decoder LLM: greedy or sampled (temperature, top-k, top-p),
//! repetition penalty, stop tokens and stop strings, KV cache, tokens streamed as they come.

use std::time::Instant;

use anyhow::{bail, Result};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use serde::Serialize;

use crate::models::llm::CausalLM;

/// transformers' `generate()` knobs that apply to one sequence.
#[derive(Clone, Debug)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    /// 0: greedy (deterministic).
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    /// > 1 makes tokens already in the text less likely (CTRL-style, as transformers).
    pub repetition_penalty: f32,
    pub seed: u64,
    /// Generation stops when the text ends with one of these (the stop string is cut off).
    pub stop: Vec<String>,
    /// Set from another thread to stop after the current token (finish_reason "cancelled"):
    /// a server sets it when the client goes away.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            seed: 42,
            stop: vec![],
            cancel: None,
        }
    }
}

/// A finished generation with its timings.
#[derive(Clone, Debug, Serialize)]
pub struct Generated {
    pub text: String,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    /// eos | stop_string | max_new_tokens | cancelled
    pub finish_reason: String,
    pub prompt_seconds: f64,
    pub generate_seconds: f64,
}

impl Generated {
    pub fn tokens_per_second(&self) -> f64 {
        self.new_tokens as f64 / self.generate_seconds.max(1e-9)
    }
}

/// Continues `prompt_ids`; `on_text` receives each new piece of text as soon as it is whole
/// (a UTF-8 character split across tokens waits for its last token).
pub fn generate(
    model: &mut CausalLM,
    prompt_ids: &[u32],
    cfg: &GenerationConfig,
    mut on_text: impl FnMut(&str),
) -> Result<Generated> {
    if prompt_ids.is_empty() {
        bail!("the prompt is empty: give some text to continue")
    }
    if cfg.max_new_tokens == 0 {
        bail!("max_new_tokens is 0: ask for at least one new token")
    }
    let ctx = model.context_length;
    let mut prompt = prompt_ids.to_vec();
    if prompt.len() + cfg.max_new_tokens > ctx {
        let keep = ctx.saturating_sub(cfg.max_new_tokens).max(1);
        eprintln!(
            "warning: the prompt ({} tokens) plus max_new_tokens ({}) exceeds the context ({ctx}); \
             keeping the last {keep} prompt tokens",
            prompt.len(),
            cfg.max_new_tokens
        );
        prompt = prompt[prompt.len() - keep..].to_vec();
    }
    let sampling = if cfg.temperature <= 0.0 {
        Sampling::ArgMax
    } else {
        let t = cfg.temperature;
        match (cfg.top_k, cfg.top_p) {
            (None, None) => Sampling::All { temperature: t },
            (Some(k), None) => Sampling::TopK { k, temperature: t },
            (None, Some(p)) => Sampling::TopP { p, temperature: t },
            (Some(k), Some(p)) => Sampling::TopKThenTopP {
                k,
                p,
                temperature: t,
            },
        }
    };
    let mut sampler = LogitsProcessor::from_sampling(cfg.seed, sampling);
    let stop_ids = model.tokenizer.stop_ids();
    model.reset();
    let t0 = Instant::now();
    let mut logits = model.forward(&prompt, 0)?;
    let prompt_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut all = prompt.clone();
    let mut new: Vec<u32> = vec![];
    let (mut emitted, mut finish) = (0usize, "max_new_tokens");
    let mut text = String::new();
    for _ in 0..cfg.max_new_tokens {
        if cfg
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            finish = "cancelled";
            break;
        }
        if cfg.repetition_penalty != 1.0 {
            logits = candle_transformers::utils::apply_repeat_penalty(
                &logits,
                cfg.repetition_penalty,
                &all,
            )?;
        }
        let next = sampler.sample(&logits)?;
        if stop_ids.contains(&next) {
            finish = "eos";
            break;
        }
        new.push(next);
        all.push(next);
        text = model.tokenizer.decode(&new)?;
        if let Some(s) = cfg
            .stop
            .iter()
            .find(|s| !s.is_empty() && text.contains(s.as_str()))
        {
            let cut = text.find(s.as_str()).unwrap_or(text.len());
            text.truncate(cut);
            if cut > emitted {
                on_text(&text[emitted..cut]);
            }
            emitted = cut;
            finish = "stop_string";
            break;
        }
        if !text.ends_with('\u{FFFD}') && text.len() > emitted && text.is_char_boundary(emitted) {
            on_text(&text[emitted..]);
            emitted = text.len();
        }
        logits = model.forward(&[next], all.len() - 1)?;
    }
    if emitted < text.len() && text.is_char_boundary(emitted) {
        on_text(&text[emitted..]);
    }
    Ok(Generated {
        text,
        prompt_tokens: prompt.len(),
        new_tokens: new.len(),
        finish_reason: finish.into(),
        prompt_seconds,
        generate_seconds: t1.elapsed().as_secs_f64(),
    })
}
