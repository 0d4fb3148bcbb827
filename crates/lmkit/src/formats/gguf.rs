//! What a GGUF file carries besides weights: the tokenizer (byte-level BPE for `gpt2` files,
//! SentencePiece BPE for `llama` files), special tokens and the chat template. The weights are
//! read by candle (`candle_core::quantized::gguf_file`).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace};
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, Tokenizer};

/// Token types in `tokenizer.ggml.token_type` (llama.cpp's enum).
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// A GGUF file's header (metadata and tensor directory; the weights stay on disk).
pub struct GgufFile {
    pub content: Content,
    pub path: std::path::PathBuf,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Self::read(f, path)
    }

    /// A GGUF file's header from bytes in memory (`name` for messages): the fuzz target's way in.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self> {
        Self::read(std::io::Cursor::new(bytes), Path::new(name))
    }

    fn read(mut f: impl std::io::Read + std::io::Seek, path: &Path) -> Result<Self> {
        // candle's reader trusts the header's counts; a crafted one can make it panic. A panic
        // there is this file's error, not the program's end.
        let content =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(&mut f)))
                .map_err(|_| {
                    anyhow!(
                        "{} is not a readable GGUF file: its header is malformed",
                        path.display()
                    )
                })?
                .map_err(|e| anyhow!("{} is not a readable GGUF file: {e}", path.display()))?;
        Ok(Self {
            content,
            path: path.to_path_buf(),
        })
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn req(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| anyhow!("{}: metadata has no {key}", self.path.display()))
    }

    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key)
            .and_then(|v| v.to_string().ok())
            .map(String::from)
    }

    pub fn u32(&self, key: &str) -> Option<u32> {
        self.get(key).and_then(|v| v.to_u32().ok())
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|v| v.to_bool().ok())
    }

    /// `general.architecture`, e.g. llama, gemma3.
    pub fn architecture(&self) -> Result<String> {
        self.string("general.architecture")
            .ok_or_else(|| anyhow!("{}: no general.architecture", self.path.display()))
    }

    /// The context length the model was trained for.
    pub fn context_length(&self) -> Option<usize> {
        let arch = self.architecture().ok()?;
        self.u32(&format!("{arch}.context_length"))
            .map(|v| v as usize)
    }

    pub fn chat_template(&self) -> Option<String> {
        self.string("tokenizer.chat_template")
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.req(key)? {
            Value::Array(a) => a
                .iter()
                .map(|v| Ok(v.to_string().map_err(|e| anyhow!("{key}: {e}"))?.clone()))
                .collect(),
            _ => bail!("{}: {key} is not an array", self.path.display()),
        }
    }

    fn numbers(&self, key: &str) -> Result<Vec<f64>> {
        match self.req(key)? {
            Value::Array(a) => Ok(a
                .iter()
                .map(|v| match v {
                    Value::F32(x) => *x as f64,
                    Value::I32(x) => *x as f64,
                    Value::U32(x) => *x as f64,
                    Value::F64(x) => *x,
                    Value::I64(x) => *x as f64,
                    Value::U8(x) => *x as f64,
                    Value::I8(x) => *x as f64,
                    _ => f64::NAN,
                })
                .collect()),
            _ => bail!("{}: {key} is not an array", self.path.display()),
        }
    }

    /// Builds the tokenizer the file describes.
    pub fn tokenizer(&self) -> Result<GgufTokenizer> {
        let model = self
            .string("tokenizer.ggml.model")
            .ok_or_else(|| anyhow!("{}: no tokenizer.ggml.model", self.path.display()))?;
        let tokens = self.strings("tokenizer.ggml.tokens")?;
        let types: Vec<i32> = match self.get("tokenizer.ggml.token_type") {
            Some(_) => self
                .numbers("tokenizer.ggml.token_type")?
                .into_iter()
                .map(|v| v as i32)
                .collect(),
            None => vec![1; tokens.len()],
        };
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut tok = match model.as_str() {
            "gpt2" => {
                let merges: Vec<(String, String)> = self
                    .strings("tokenizer.ggml.merges")?
                    .into_iter()
                    .map(|m| {
                        m.split_once(' ')
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                            .ok_or_else(|| anyhow!("bad merge {m:?}"))
                    })
                    .collect::<Result<_>>()?;
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab.clone(), merges)
                    .build()
                    .map_err(|e| anyhow!("building the BPE model: {e}"))?;
                let mut t = Tokenizer::new(bpe);
                let byte_level = ByteLevel::new(false, true, true);
                // SmolLM's pre-tokenizer splits digits one by one before the GPT-2 regex.
                let pre = if self.string("tokenizer.ggml.pre").as_deref() == Some("smollm") {
                    PreTokenizerWrapper::Sequence(PreSequence::new(vec![
                        PreTokenizerWrapper::Digits(Digits::new(true)),
                        PreTokenizerWrapper::ByteLevel(byte_level),
                    ]))
                } else {
                    PreTokenizerWrapper::ByteLevel(byte_level)
                };
                t.with_pre_tokenizer(Some(pre));
                t.with_decoder(Some(DecoderWrapper::ByteLevel(byte_level)));
                t
            }
            "llama" => {
                // SentencePiece BPE: every pair of pieces that make up a piece is a merge,
                // ranked by the merged piece's score (what transformers' SPM converter does).
                let scores = self.numbers("tokenizer.ggml.scores")?;
                if scores.len() < tokens.len() {
                    bail!(
                        "{}: tokenizer.ggml.scores holds {} values for {} tokens",
                        self.path.display(),
                        scores.len(),
                        tokens.len()
                    )
                }
                let mut merges: Vec<(f64, u32, String, String)> = vec![];
                for (id, piece) in tokens.iter().enumerate() {
                    if types.get(id).copied().unwrap_or(1) != 1 {
                        continue;
                    }
                    for (k, _) in piece.char_indices().skip(1) {
                        let (l, r) = piece.split_at(k);
                        if vocab.contains_key(l) && vocab.contains_key(r) {
                            merges.push((scores[id], id as u32, l.to_string(), r.to_string()));
                        }
                    }
                }
                merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                let merges = merges.into_iter().map(|(_, _, l, r)| (l, r)).collect();
                let unk = self
                    .u32("tokenizer.ggml.unknown_token_id")
                    .and_then(|i| tokens.get(i as usize).cloned());
                let mut b = BPE::builder()
                    .vocab_and_merges(vocab.clone(), merges)
                    .byte_fallback(true)
                    .fuse_unk(true);
                if let Some(u) = unk {
                    b = b.unk_token(u);
                }
                let bpe = b
                    .build()
                    .map_err(|e| anyhow!("building the BPE model: {e}"))?;
                let mut t = Tokenizer::new(bpe);
                let mut norms = vec![];
                if self
                    .bool("tokenizer.ggml.add_space_prefix")
                    .unwrap_or(false)
                {
                    norms.push(NormalizerWrapper::Prepend(Prepend::new("▁".into())));
                }
                norms.push(NormalizerWrapper::Replace(
                    Replace::new(" ", "▁").map_err(|e| anyhow!("{e}"))?,
                ));
                t.with_normalizer(Some(NormalizerWrapper::Sequence(
                    tokenizers::normalizers::Sequence::new(norms),
                )));
                t.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(vec![
                    DecoderWrapper::Replace(Replace::new("▁", " ").map_err(|e| anyhow!("{e}"))?),
                    DecoderWrapper::ByteFallback(ByteFallback::new()),
                    DecoderWrapper::Fuse(Fuse::new()),
                ]))));
                t
            }
            other => bail!(
                "{}: tokenizer model {other:?} is not supported (gpt2 and llama are)",
                self.path.display()
            ),
        };
        // Control and user-defined tokens match as whole strings and decode as special.
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == CONTROL || t == USER_DEFINED)
            .map(|(s, &t)| AddedToken::from(s.clone(), t == CONTROL))
            .collect();
        tok.add_special_tokens(&specials);
        let id = |k: &str| self.u32(k);
        Ok(GgufTokenizer {
            tokenizer: tok,
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            add_bos: self
                .bool("tokenizer.ggml.add_bos_token")
                .unwrap_or(model == "llama"),
            tokens,
        })
    }
}

/// A tokenizer from GGUF metadata.
#[derive(Clone)]
pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    pub tokens: Vec<String>,
}

impl GgufTokenizer {
    /// Token ids of `text`; special-token strings in it (e.g. `<|im_start|>`) become their ids.
    /// `bos`: put the BOS token first when the model wants one.
    pub fn encode(&self, text: &str, bos: bool) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| anyhow!("tokenization failed: {e}"))?;
        let mut ids = vec![];
        if bos && self.add_bos {
            if let Some(b) = self.bos {
                ids.push(b);
            }
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| anyhow!("decode failed: {e}"))
    }

    pub fn id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// Tokens that end a turn or the text: EOS and the chat formats' end markers.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.eos.into_iter().collect();
        for t in [
            "<|im_end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<eos>",
            "</s>",
        ] {
            if let Some(i) = self.id(t) {
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        v
    }
}

/// The prompt for one user message in the model's chat format: the GGUF's Jinja chat
/// template when it has one, else Gemma's turn format.
/// `template`: the file's `tokenizer.chat_template`; `path` names the file in errors.
pub fn chat_prompt(
    template: Option<&str>,
    path: &Path,
    tok: &GgufTokenizer,
    user: &str,
) -> Result<String> {
    chat_prompt_messages(
        template,
        path,
        tok,
        &[ChatMessage {
            role: "user".into(),
            content: user.into(),
        }],
    )
}

/// One turn of a conversation, as OpenAI's chat API and transformers' chat templates name it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    pub content: String,
}

/// A whole conversation rendered with the file's chat template, ending with the cue for the
/// assistant's next turn (`add_generation_prompt`).
pub fn chat_prompt_messages(
    template: Option<&str>,
    path: &Path,
    tok: &GgufTokenizer,
    messages: &[ChatMessage],
) -> Result<String> {
    let name = |id: Option<u32>| {
        id.and_then(|i| tok.tokens.get(i as usize).cloned())
            .unwrap_or_default()
    };
    if messages.is_empty() {
        bail!("the conversation is empty: give at least one message")
    }
    match template {
        Some(tpl) => {
            let mut env = minijinja::Environment::new();
            env.add_template("chat", tpl)
                .map_err(|e| anyhow!("{}: chat template: {e}", path.display()))?;
            let t = env.get_template("chat")?;
            let msgs: Vec<_> = messages
                .iter()
                .map(|m| minijinja::context! { role => m.role.clone(), content => m.content.clone() })
                .collect();
            let out = t
                .render(minijinja::context! {
                    messages => msgs,
                    add_generation_prompt => true,
                    bos_token => name(tok.bos),
                    eos_token => name(tok.eos),
                })
                .map_err(|e| anyhow!("{}: rendering the chat template: {e}", path.display()))?;
            Ok(out)
        }
        // Gemma's turn markers: its GGUF files may come without a template.
        None => {
            let mut out = String::new();
            for m in messages {
                let role = if m.role == "assistant" {
                    "model"
                } else {
                    "user"
                };
                out.push_str(&format!(
                    "<start_of_turn>{role}\n{}<end_of_turn>\n",
                    m.content
                ));
            }
            out.push_str("<start_of_turn>model\n");
            Ok(out)
        }
    }
}
