//! `AutoTokenizer`: the `tokenizers` crate with transformers' calling conventions — batches,
//! padding (none / longest / max_length), truncation to `model_max_length`, `model_input_names`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{EncodeInput, Tokenizer};

pub use crate::formats::tokenizer::{byte_level_bpe, copy_tokenizer_files, TOKENIZER_FILES};

/// Token tensors a model takes: ids and mask are (batch, seq) u32; token types optional.
#[derive(Clone, Debug)]
pub struct ModelInput {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub token_type_ids: Option<Tensor>,
}
/// How to pad a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Each sequence keeps its own length.
    None,
    /// Pad to the longest sequence in the batch (transformers' `padding=True`).
    Longest,
    /// Pad every sequence to this length (`padding="max_length"`).
    MaxLength(usize),
}

/// Options for one `encode` call; the default is transformers' `padding=True, truncation=True`.
#[derive(Clone, Copy, Debug)]
pub struct EncodeOptions {
    pub padding: Padding,
    /// Truncate to at most this many tokens (special tokens included). `None`: the tokenizer's
    /// `model_max_length`. Use `Some(usize::MAX)` to disable truncation.
    pub max_length: Option<usize>,
    pub add_special_tokens: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            padding: Padding::Longest,
            max_length: None,
            add_special_tokens: true,
        }
    }
}

/// The result of encoding a batch: one row per text, as transformers' `BatchEncoding`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchEncoding {
    pub input_ids: Vec<Vec<u32>>,
    pub attention_mask: Vec<Vec<u32>>,
    pub token_type_ids: Vec<Vec<u32>>,
    pub tokens: Vec<Vec<String>>,
    /// Per text: how many tokens truncation removed (0 if none).
    pub truncated: Vec<usize>,
}

impl BatchEncoding {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Tensors for a model; rows must have equal lengths (pad first).
    pub fn to_input(&self, device: &Device) -> Result<ModelInput> {
        let rows = self.input_ids.len();
        let len = self.input_ids.first().map_or(0, |r| r.len());
        if self.input_ids.iter().any(|r| r.len() != len) {
            bail!("rows have different lengths: encode with padding to make a tensor batch")
        }
        let t = |v: &Vec<Vec<u32>>| -> Result<Tensor> {
            let flat: Vec<u32> = v.iter().flatten().copied().collect();
            Ok(Tensor::from_vec(flat, (rows, len), device)?)
        };
        Ok(ModelInput {
            input_ids: t(&self.input_ids)?,
            attention_mask: t(&self.attention_mask)?,
            token_type_ids: Some(t(&self.token_type_ids)?),
        })
    }
}

/// A pretrained tokenizer and the conventions that go with it.
#[derive(Clone)]
pub struct AutoTokenizer {
    tokenizer: Tokenizer,
    /// What the model takes, in transformers' order (e.g. input_ids, attention_mask).
    pub model_input_names: Vec<String>,
    /// Default truncation length.
    pub model_max_length: usize,
    pub pad_token_id: u32,
    pub dir: PathBuf,
}

impl AutoTokenizer {
    /// Resolves `id` through the model store and loads its tokenizer.
    pub fn from_pretrained(id: &str) -> Result<Self> {
        let dir = crate::hub::resolve(id)?;
        Self::from_folder(&dir)
    }

    /// From a folder with tokenizer.json, or vocab.txt (+ tokenizer_config.json) for WordPiece.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let cfg = crate::util::read_json_if_exists(&dir.join("tokenizer_config.json"))?;
        let model_cfg = crate::util::read_json_if_exists(&dir.join("config.json"))?;
        let tj = dir.join("tokenizer.json");
        let mut tokenizer = if tj.is_file() {
            Tokenizer::from_file(&tj)
                .map_err(|e| anyhow::anyhow!("cannot load tokenizer from {}: {e}", tj.display()))?
        } else if dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file() {
            byte_level_bpe(&dir.join("vocab.json"), &dir.join("merges.txt"))?
        } else if dir.join("vocab.txt").is_file() {
            let lower = cfg["do_lower_case"].as_bool().unwrap_or(true);
            wordpiece_from_vocab(&dir.join("vocab.txt"), lower)?
        } else {
            bail!(
                "no tokenizer in {}: expected tokenizer.json or vocab.txt",
                dir.display()
            )
        };
        // Padding and truncation baked into a tokenizer.json (all-MiniLM-L6-v2 pads to 128)
        // would silently override what the caller asks for: lmkit applies its own.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow::anyhow!("{e}"))?;

        let model_type = model_cfg["model_type"].as_str().unwrap_or("");
        let class = cfg["tokenizer_class"].as_str().unwrap_or("");
        let model_input_names = match cfg["model_input_names"].as_array() {
            Some(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            None if model_type == "distilbert"
                || class.contains("DistilBert")
                || model_type == "roberta"
                || model_type == "xlm-roberta" =>
            {
                vec!["input_ids".into(), "attention_mask".into()]
            }
            None => vec![
                "input_ids".into(),
                "token_type_ids".into(),
                "attention_mask".into(),
            ],
        };
        // transformers uses a huge sentinel when the length is unset; fall back to the model's
        // position table, then 512.
        let max_pos = model_cfg["max_position_embeddings"].as_u64();
        let model_max_length = match cfg["model_max_length"].as_f64() {
            Some(v) if v > 0.0 && v < 1e9 => v as usize,
            _ => max_pos.map_or(512, |v| v as usize),
        };
        let pad_token = cfg["pad_token"]
            .as_str()
            .map(String::from)
            .or_else(|| cfg["pad_token"]["content"].as_str().map(String::from));
        let pad_token_id = pad_token
            .as_deref()
            .and_then(|p| tokenizer.token_to_id(p))
            .or_else(|| tokenizer.token_to_id("[PAD]"))
            .or_else(|| tokenizer.token_to_id("<pad>"))
            .unwrap_or(0);
        Ok(Self {
            tokenizer,
            model_input_names,
            model_max_length,
            pad_token_id,
            dir: dir.to_path_buf(),
        })
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The id of the unknown token (WordPiece's `[UNK]`, SentencePiece's `<unk>`), if any.
    pub fn unk_token_id(&self) -> Option<u32> {
        ["[UNK]", "<unk>"]
            .iter()
            .find_map(|t| self.tokenizer.token_to_id(t))
    }

    /// Encodes a batch of texts (transformers' `tokenizer(texts, padding=..., truncation=...)`).
    pub fn encode_batch<S: AsRef<str>>(
        &self,
        texts: &[S],
        opts: EncodeOptions,
    ) -> Result<BatchEncoding> {
        let inputs: Vec<EncodeInput> = texts.iter().map(|t| t.as_ref().into()).collect();
        self.encode_inputs(inputs, opts, tokenizers::TruncationStrategy::LongestFirst)
    }

    /// Encodes sentence pairs (premise, hypothesis), e.g. for NLI models.
    pub fn encode_pairs<S: AsRef<str>>(
        &self,
        pairs: &[(S, S)],
        opts: EncodeOptions,
    ) -> Result<BatchEncoding> {
        self.encode_inputs(
            pair_inputs(pairs),
            opts,
            tokenizers::TruncationStrategy::LongestFirst,
        )
    }

    /// Encodes pairs, truncating only the first text (transformers' `truncation="only_first"`:
    /// the zero-shot pipeline keeps the hypothesis whole and shortens the premise).
    pub fn encode_pairs_only_first<S: AsRef<str>>(
        &self,
        pairs: &[(S, S)],
        opts: EncodeOptions,
    ) -> Result<BatchEncoding> {
        self.encode_inputs(
            pair_inputs(pairs),
            opts,
            tokenizers::TruncationStrategy::OnlyFirst,
        )
    }

    fn encode_inputs(
        &self,
        inputs: Vec<EncodeInput>,
        opts: EncodeOptions,
        strategy: tokenizers::TruncationStrategy,
    ) -> Result<BatchEncoding> {
        let max_len = opts.max_length.unwrap_or(self.model_max_length);
        let mut encs = self
            .tokenizer
            .encode_batch(inputs.clone(), opts.add_special_tokens)
            .map_err(|e| anyhow::anyhow!("tokenization failed: {e}"))?;
        let too_long: Vec<usize> = (0..encs.len())
            .filter(|&i| encs[i].len() > max_len)
            .collect();
        let mut truncated = vec![0; encs.len()];
        if !too_long.is_empty() {
            // Re-encode only the long inputs with the tokenizers crate's own truncation
            // (longest_first, special tokens kept), on a configured copy of the tokenizer.
            let mut t = self.tokenizer.clone();
            t.with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                strategy,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("max_length {max_len}: {e}"))?;
            let longest = too_long.iter().map(|&i| encs[i].len()).max().unwrap_or(0);
            for &i in &too_long {
                let enc = t
                    .encode(inputs[i].clone(), opts.add_special_tokens)
                    .map_err(|e| anyhow::anyhow!("tokenization failed: {e}"))?;
                truncated[i] = encs[i].len() - enc.len();
                encs[i] = enc;
            }
            tracing::warn!(
                "{} of {} inputs truncated to max_length {max_len} (longest: {longest} tokens; first: input {})",
                too_long.len(),
                encs.len(),
                too_long[0]
            );
        }
        let mut out = BatchEncoding {
            truncated,
            ..Default::default()
        };
        for enc in encs {
            out.input_ids.push(enc.get_ids().to_vec());
            out.attention_mask.push(enc.get_attention_mask().to_vec());
            out.token_type_ids.push(enc.get_type_ids().to_vec());
            out.tokens.push(enc.get_tokens().to_vec());
        }
        let target = match opts.padding {
            Padding::None => None,
            Padding::Longest => out.input_ids.iter().map(|r| r.len()).max(),
            Padding::MaxLength(n) => Some(n.min(max_len)),
        };
        if let Some(target) = target {
            let pad = self
                .tokenizer
                .id_to_token(self.pad_token_id)
                .unwrap_or_default();
            for i in 0..out.len() {
                let missing = target.saturating_sub(out.input_ids[i].len());
                out.input_ids[i].extend(std::iter::repeat_n(self.pad_token_id, missing));
                out.attention_mask[i].extend(std::iter::repeat_n(0, missing));
                out.token_type_ids[i].extend(std::iter::repeat_n(0, missing));
                out.tokens[i].extend(std::iter::repeat_n(pad.clone(), missing));
            }
        }
        Ok(out)
    }

    /// Token ids back to text.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|e| anyhow::anyhow!("decode failed: {e}"))
    }
}

fn pair_inputs<S: AsRef<str>>(pairs: &[(S, S)]) -> Vec<EncodeInput<'_>> {
    pairs
        .iter()
        .map(|(a, b)| (a.as_ref(), b.as_ref()).into())
        .collect()
}

/// BERT's uncased/cased WordPiece pipeline, built from a vocab.txt.
fn wordpiece_from_vocab(vocab: &Path, lowercase: bool) -> Result<Tokenizer> {
    let path = vocab.to_string_lossy().to_string();
    let wp = WordPiece::from_file(&path)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", vocab.display()))?;
    let id = |t: &str| {
        use tokenizers::Model;
        wp.token_to_id(t)
            .ok_or_else(|| anyhow::anyhow!("{} has no {t} token", vocab.display()))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let mut tok = Tokenizer::new(wp);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    tok.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
    Ok(tok)
}
