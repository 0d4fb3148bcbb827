//! Greedy and beam search for encoder-decoders (models/seq2seq.rs), as transformers'
//! `generate()` does them, so that a checkpoint gives the same tokens here as in Python
//! (tests/seq2seq.rs checks it token for token):
//! - the logits processors, in transformers' order: repetition penalty, no-repeat n-grams,
//!   bad words, min length, forced BOS, forced EOS (at max_length - 1);
//! - greedy: processors on the raw logits, arg max (first index on ties);
//! - beam search: processors on log-probabilities; each step keeps the best 2 x num_beams
//!   continuations; those ending in EOS (or at max_length) among the first num_beams become
//!   finished hypotheses scored sum(log p) / length^length_penalty; the best num_beams others
//!   run on. `early_stopping`: true stops when num_beams hypotheses are finished; false stops
//!   when the best running beam, scored at its current length, cannot beat the worst finished
//!   one; "never" scores it at max_length when length_penalty > 0 (the canonical search).
//!
//! Lengths count decoder tokens including the start token, as transformers' `max_length` does.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use serde::Serialize;

use crate::models::seq2seq::{log_softmax, Seq2SeqModel, SpecialIds};

/// transformers' `early_stopping`: a bool or "never".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarlyStopping {
    True,
    False,
    Never,
}

impl std::str::FromStr for EarlyStopping {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "true" | "True" => Ok(Self::True),
            "false" | "False" => Ok(Self::False),
            "never" => Ok(Self::Never),
            other => bail!("early_stopping must be true, false or never, not {other:?}"),
        }
    }
}

/// The `generate()` settings of an encoder-decoder.
#[derive(Clone, Debug)]
pub struct SearchConfig {
    /// Decoder length limit, start token included. None: 20 new tokens (transformers 5's
    /// default, 21 with the start token).
    pub max_length: Option<usize>,
    /// If set, overrides max_length: max_length = 1 + max_new_tokens.
    pub max_new_tokens: Option<usize>,
    pub min_length: usize,
    pub num_beams: usize,
    pub length_penalty: f64,
    pub early_stopping: EarlyStopping,
    pub no_repeat_ngram_size: usize,
    pub repetition_penalty: f32,
    /// Single-token bad words (Marian bans its pad token this way).
    pub bad_words_ids: Vec<u32>,
    pub forced_bos_token_id: Option<u32>,
    pub forced_eos_token_id: Option<u32>,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            max_length: None,
            max_new_tokens: None,
            min_length: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::False,
            no_repeat_ngram_size: 0,
            repetition_penalty: 1.0,
            bad_words_ids: vec![],
            forced_bos_token_id: None,
            forced_eos_token_id: None,
        }
    }
}

impl SearchConfig {
    /// Defaults of a checkpoint folder: config.json, then generation_config.json over it.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let mut c = Self::default();
        for f in ["config.json", "generation_config.json"] {
            let p = dir.join(f);
            let v = crate::util::read_json_if_exists(&p)?;
            if !v.is_null() {
                c.update(&v)
                    .with_context(|| format!("in {}", p.display()))?;
            }
        }
        Ok(c)
    }

    /// Applies the generation keys present in a JSON object (a generation_config.json, or a
    /// `task_specific_params` entry).
    pub fn update(&mut self, v: &serde_json::Value) -> Result<()> {
        let uint = |k: &str| -> Result<Option<usize>> {
            match &v[k] {
                serde_json::Value::Null => Ok(None),
                x => x.as_u64().map(|n| Some(n as usize)).with_context(|| {
                    format!("field {k:?} must be a non-negative integer, not {x}")
                }),
            }
        };
        if let Some(n) = uint("max_length")? {
            self.max_length = Some(n);
        }
        if let Some(n) = uint("max_new_tokens")? {
            self.max_new_tokens = Some(n);
        }
        if let Some(n) = uint("min_length")? {
            self.min_length = n;
        }
        if let Some(n) = uint("num_beams")? {
            self.num_beams = n;
        }
        if let Some(n) = uint("no_repeat_ngram_size")? {
            self.no_repeat_ngram_size = n;
        }
        if let Some(x) = v["length_penalty"].as_f64() {
            self.length_penalty = x;
        }
        if let Some(x) = v["repetition_penalty"].as_f64() {
            self.repetition_penalty = x as f32;
        }
        match &v["early_stopping"] {
            serde_json::Value::Bool(b) => {
                self.early_stopping = if *b {
                    EarlyStopping::True
                } else {
                    EarlyStopping::False
                }
            }
            serde_json::Value::String(s) => self.early_stopping = s.parse()?,
            _ => {}
        }
        if let Some(n) = uint("forced_bos_token_id")? {
            self.forced_bos_token_id = Some(n as u32);
        }
        if let Some(n) = uint("forced_eos_token_id")? {
            self.forced_eos_token_id = Some(n as u32);
        }
        if let Some(a) = v["bad_words_ids"].as_array() {
            self.bad_words_ids.clear();
            for w in a {
                match w.as_array().map(|x| x.as_slice()) {
                    Some([id]) if id.as_u64().is_some() => {
                        self.bad_words_ids.push(id.as_u64().unwrap() as u32)
                    }
                    _ => bail!("bad_words_ids: only single-token entries are supported, got {w}"),
                }
            }
        }
        Ok(())
    }

    /// The decoder length limit in effect.
    pub fn limit(&self) -> usize {
        self.max_new_tokens
            .map(|n| n + 1)
            .or(self.max_length)
            .unwrap_or(21)
    }
}

/// A generated sequence: decoder ids from the start token on (EOS included when reached).
#[derive(Clone, Debug, Serialize)]
pub struct SearchOutput {
    pub ids: Vec<u32>,
    /// Beam search: sum of log-probabilities / length^length_penalty (transformers'
    /// `sequences_scores`); None for greedy.
    pub score: Option<f32>,
}

/// The logits processors for one hypothesis `seq` (decoder ids so far).
fn process(scores: &mut [f32], seq: &[u32], cfg: &SearchConfig, sp: &SpecialIds, limit: usize) {
    let cur = seq.len();
    if cfg.repetition_penalty != 1.0 {
        let mut seen = std::collections::HashSet::new();
        for &t in seq {
            if seen.insert(t) {
                let s = &mut scores[t as usize];
                *s = if *s < 0.0 {
                    *s * cfg.repetition_penalty
                } else {
                    *s / cfg.repetition_penalty
                };
            }
        }
    }
    let n = cfg.no_repeat_ngram_size;
    if n > 0 && cur + 1 >= n {
        let prefix = &seq[cur + 1 - n..];
        for i in 0..(cur + 1).saturating_sub(n) {
            if &seq[i..i + n - 1] == prefix {
                scores[seq[i + n - 1] as usize] = f32::NEG_INFINITY;
            }
        }
    }
    for &b in &cfg.bad_words_ids {
        scores[b as usize] = f32::NEG_INFINITY;
    }
    if cur < cfg.min_length {
        for &e in &sp.eos {
            scores[e as usize] = f32::NEG_INFINITY;
        }
    }
    let force = |scores: &mut [f32], id: u32| {
        scores.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
        scores[id as usize] = 0.0;
    };
    if let (1, Some(b)) = (cur, cfg.forced_bos_token_id) {
        force(scores, b);
    }
    if let Some(e) = cfg.forced_eos_token_id {
        if cur + 1 == limit {
            force(scores, e);
        }
    }
}

fn last_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let (_, t, _) = logits.dims3()?;
    Ok(logits.narrow(1, t - 1, 1)?.squeeze(1)?.to_vec2::<f32>()?)
}

/// Generates from one input (token ids, special tokens included).
pub fn generate(
    model: &dyn Seq2SeqModel,
    input_ids: &[u32],
    cfg: &SearchConfig,
) -> Result<SearchOutput> {
    if input_ids.is_empty() {
        bail!("the input is empty: give some text to encode")
    }
    if cfg.num_beams == 0 {
        bail!("num_beams must be at least 1")
    }
    let limit = cfg.limit();
    if limit < 2 {
        bail!(
            "max_length {limit} leaves no room for a new token (it counts the decoder start token)"
        )
    }
    let sp = model.specials().clone();
    for &b in cfg
        .bad_words_ids
        .iter()
        .chain(cfg.forced_bos_token_id.iter())
        .chain(cfg.forced_eos_token_id.iter())
    {
        if b as usize >= sp.vocab_size {
            bail!(
                "token id {b} in the generation settings is outside the vocabulary ({})",
                sp.vocab_size
            )
        }
    }
    let ids = Tensor::new(input_ids, model.device())?.unsqueeze(0)?;
    let enc = model.encode(&ids)?;
    if cfg.num_beams == 1 {
        greedy(model, &enc, cfg, &sp, limit)
    } else {
        beam(model, &enc, cfg, &sp, limit)
    }
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn greedy(
    m: &dyn Seq2SeqModel,
    enc: &Tensor,
    cfg: &SearchConfig,
    sp: &SpecialIds,
    limit: usize,
) -> Result<SearchOutput> {
    let mut cache = m.start_decoding(enc, 1)?;
    let mut seq = vec![sp.decoder_start];
    let mut logits = m.decode(
        &Tensor::new(&[[sp.decoder_start]], enc.device())?,
        &mut cache,
    )?;
    loop {
        let mut row = last_rows(&logits)?.remove(0);
        process(&mut row, &seq, cfg, sp, limit);
        let next = argmax(&row);
        seq.push(next);
        if sp.eos.contains(&next) || seq.len() >= limit {
            break;
        }
        logits = m.decode(&Tensor::new(&[[next]], enc.device())?, &mut cache)?;
    }
    Ok(SearchOutput {
        ids: seq,
        score: None,
    })
}

/// A hypothesis: its tokens and its score.
#[derive(Clone)]
struct Hyp {
    seq: Vec<u32>,
    score: f32,
    finished: bool,
}

/// Indices of the k largest values, largest first (lower index first on ties).
fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

fn beam(
    m: &dyn Seq2SeqModel,
    enc: &Tensor,
    cfg: &SearchConfig,
    sp: &SpecialIds,
    limit: usize,
) -> Result<SearchOutput> {
    const NEG: f32 = -1.0e9;
    let nb = cfg.num_beams;
    let keep = 2usize.max(1 + sp.eos.len()) * nb;
    let vocab = sp.vocab_size;
    let lp = cfg.length_penalty;
    let mut running: Vec<Hyp> = (0..nb)
        .map(|i| Hyp {
            seq: vec![sp.decoder_start],
            score: if i == 0 { 0.0 } else { NEG },
            finished: false,
        })
        .collect();
    let mut done: Vec<Hyp> = vec![
        Hyp {
            seq: vec![],
            score: NEG,
            finished: false
        };
        nb
    ];
    let mut improvable = true;
    let mut cache = m.start_decoding(enc, nb)?;
    let start = Tensor::new(vec![sp.decoder_start; nb], enc.device())?.unsqueeze(1)?;
    let mut logits = m.decode(&start, &mut cache)?;
    loop {
        let cur = running[0].seq.len();
        // Log-probabilities, processed, plus each beam's running score: nb x vocab candidates.
        let lprobs = last_rows(&log_softmax(&logits)?)?;
        let mut flat = Vec::with_capacity(nb * vocab);
        for (h, mut row) in running.iter().zip(lprobs) {
            if row.len() != vocab {
                bail!(
                    "the model returned {} logits, its config says vocab_size {vocab}",
                    row.len()
                )
            }
            process(&mut row, &h.seq, cfg, sp, limit);
            flat.extend(row.iter().map(|&x| x + h.score));
        }
        let cands: Vec<(Hyp, usize)> = top_k(&flat, keep)
            .into_iter()
            .map(|i| {
                let (b, tok) = (i / vocab, (i % vocab) as u32);
                let mut seq = running[b].seq.clone();
                seq.push(tok);
                let hit = sp.eos.contains(&tok) || cur + 1 >= limit;
                (
                    Hyp {
                        seq,
                        score: flat[i],
                        finished: hit,
                    },
                    b,
                )
            })
            .collect();
        // The best num_beams continuations that did not stop run on.
        let run_scores: Vec<f32> = cands
            .iter()
            .map(|(h, _)| h.score + if h.finished { NEG } else { 0.0 })
            .collect();
        let next_running: Vec<(Hyp, usize)> = top_k(&run_scores, nb)
            .into_iter()
            .map(|i| {
                let (h, b) = &cands[i];
                (
                    Hyp {
                        seq: h.seq.clone(),
                        score: run_scores[i],
                        finished: false,
                    },
                    *b,
                )
            })
            .collect();
        // Stopped continuations among the first num_beams join the finished list if better.
        let all_done = done.iter().all(|h| h.finished) && cfg.early_stopping == EarlyStopping::True;
        // Generated length after this step: cur + 1 tokens minus the start token.
        let norm = (cur as f64).powf(lp) as f32;
        let mut merged: Vec<Hyp> = done.clone();
        for (k, (h, _)) in cands.iter().enumerate() {
            let just = h.finished && k < nb;
            let mut s = h.score / norm;
            if all_done {
                s += NEG;
            }
            if !improvable {
                s += NEG;
            }
            if !just {
                s += NEG;
            }
            merged.push(Hyp {
                seq: h.seq.clone(),
                score: s,
                finished: just,
            });
        }
        let merged_scores: Vec<f32> = merged.iter().map(|h| h.score).collect();
        done = top_k(&merged_scores, nb)
            .into_iter()
            .map(|i| merged[i].clone())
            .collect();
        let all_hit = cands.iter().all(|(h, _)| h.finished);
        let from: Vec<u32> = next_running.iter().map(|(_, b)| *b as u32).collect();
        running = next_running.into_iter().map(|(h, _)| h).collect();
        // Can a running beam still beat the worst finished hypothesis?
        let cur = cur + 1;
        let best_len = if cfg.early_stopping == EarlyStopping::Never && lp > 0.0 {
            limit - 1
        } else {
            cur - 1
        };
        let best_possible = running[0].score / ((best_len as f64).powf(lp) as f32);
        let worst_done = done.iter().map(|h| h.score).fold(f32::INFINITY, f32::min);
        improvable = improvable
            && done
                .iter()
                .any(|h| best_possible > if h.finished { worst_done } else { NEG });
        let full = done.iter().all(|h| h.finished) && cfg.early_stopping == EarlyStopping::True;
        if !improvable || full || all_hit {
            break;
        }
        cache.reorder(&from)?;
        let last: Vec<u32> = running.iter().map(|h| *h.seq.last().unwrap()).collect();
        logits = m.decode(&Tensor::new(last, enc.device())?.unsqueeze(1)?, &mut cache)?;
    }
    let best = if done[0].finished {
        &done[0]
    } else {
        &running[0]
    };
    Ok(SearchOutput {
        ids: best.seq.clone(),
        score: Some(best.score),
    })
}
