//! The BART family of encoder-decoders: BART (`model_type: "bart"`) and Marian / opus-mt
//! (`"marian"`), as transformers' `modeling_bart.py` and `modeling_marian.py` (the latter is a
//! copy of the former with three switches, which is why one file serves both):
//! - positions: BART learns them, with an offset of 2; Marian uses fixed sinusoids (sines in the
//!   first half of the vector, cosines in the second), computed here, not read;
//! - `layernorm_embedding` after the embeddings: BART only;
//! - embeddings scaled by sqrt(d_model) when `scale_embedding` (Marian's default).
//!
//! Both are post-norm: residual add, then LayerNorm, after each block. The LM head is the
//! decoder's embedding matrix (tied) plus `final_logits_bias`.

use candle_core::{Device, Module, Result, Tensor};
use serde::Deserialize;
use tracing::{span, Level, Span};

use crate::models::seq2seq::{attend, split_heads, KvCache, Seq2SeqModel, SpecialIds};
use crate::nn::{Activation, Embedding, LayerNorm, Linear, Weights};

/// `BartConfig` / `MarianConfig`: the fields this implementation reads.
#[derive(Clone, Debug, Deserialize)]
pub struct BartConfig {
    pub model_type: String,
    pub vocab_size: usize,
    #[serde(default)]
    pub decoder_vocab_size: Option<usize>,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_ffn_dim: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_act")]
    pub activation_function: String,
    #[serde(default)]
    pub scale_embedding: bool,
    #[serde(default)]
    pub normalize_before: bool,
    pub pad_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub decoder_start_token_id: Option<u32>,
}

fn default_act() -> String {
    "gelu".into()
}

/// `BartAttention`: q/k/v/out projections with bias; q scaled by head_dim^-1/2.
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(w: &Weights, d: usize, heads: usize) -> Result<Self> {
        if !d.is_multiple_of(heads) {
            candle_core::bail!("d_model {d} is not a multiple of the {heads} attention heads")
        }
        Ok(Self {
            q_proj: Linear::load(&w.pp("q_proj"), d, d)?,
            k_proj: Linear::load(&w.pp("k_proj"), d, d)?,
            v_proj: Linear::load(&w.pp("v_proj"), d, d)?,
            out_proj: Linear::load(&w.pp("out_proj"), d, d)?,
            heads,
            head_dim: d / heads,
        })
    }

    fn kv(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            split_heads(&self.k_proj.forward(x)?, self.heads)?,
            split_heads(&self.v_proj.forward(x)?, self.heads)?,
        ))
    }

    /// Attends from `x` to `kv`; `causal_past` = Some(cached length) for decoder self-attention.
    fn forward(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        causal_past: Option<usize>,
    ) -> Result<Tensor> {
        let q = split_heads(&self.q_proj.forward(x)?, self.heads)?;
        let scale = (self.head_dim as f64).powf(-0.5);
        let ctx = attend(&q, k, v, scale, None, causal_past)?;
        self.out_proj.forward(&ctx)
    }
}

/// fc1 -> activation -> fc2.
struct FeedForward {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl FeedForward {
    fn load(w: &Weights, d: usize, ffn: usize, act: Activation) -> Result<Self> {
        Ok(Self {
            fc1: Linear::load(&w.pp("fc1"), d, ffn)?,
            fc2: Linear::load(&w.pp("fc2"), ffn, d)?,
            act,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(x)?)?)
    }
}

/// `BartEncoderLayer`: self-attention + LayerNorm, feed-forward + LayerNorm (post-norm).
struct EncoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    ffn: FeedForward,
    final_layer_norm: LayerNorm,
}

impl EncoderLayer {
    fn load(w: &Weights, c: &BartConfig, act: Activation) -> Result<Self> {
        let d = c.d_model;
        Ok(Self {
            self_attn: Attention::load(&w.pp("self_attn"), d, c.encoder_attention_heads)?,
            self_attn_layer_norm: LayerNorm::load(&w.pp("self_attn_layer_norm"), d, 1e-5)?,
            ffn: FeedForward::load(w, d, c.encoder_ffn_dim, act)?,
            final_layer_norm: LayerNorm::load(&w.pp("final_layer_norm"), d, 1e-5)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (k, v) = self.self_attn.kv(x)?;
        let x = self
            .self_attn_layer_norm
            .forward(&(x + self.self_attn.forward(x, &k, &v, None)?)?)?;
        self.final_layer_norm
            .forward(&(&x + self.ffn.forward(&x)?)?)
    }
}

/// `BartDecoderLayer`: causal self-attention, cross-attention, feed-forward; each + LayerNorm.
struct DecoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    encoder_attn: Attention,
    encoder_attn_layer_norm: LayerNorm,
    ffn: FeedForward,
    final_layer_norm: LayerNorm,
}

impl DecoderLayer {
    fn load(w: &Weights, c: &BartConfig, act: Activation) -> Result<Self> {
        let (d, h) = (c.d_model, c.decoder_attention_heads);
        Ok(Self {
            self_attn: Attention::load(&w.pp("self_attn"), d, h)?,
            self_attn_layer_norm: LayerNorm::load(&w.pp("self_attn_layer_norm"), d, 1e-5)?,
            encoder_attn: Attention::load(&w.pp("encoder_attn"), d, h)?,
            encoder_attn_layer_norm: LayerNorm::load(&w.pp("encoder_attn_layer_norm"), d, 1e-5)?,
            ffn: FeedForward::load(w, d, c.decoder_ffn_dim, act)?,
            final_layer_norm: LayerNorm::load(&w.pp("final_layer_norm"), d, 1e-5)?,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut KvCache, layer: usize) -> Result<Tensor> {
        let past = cache.len;
        let (k, v) = self.self_attn.kv(x)?;
        let (k, v) = cache.append(layer, k, v)?;
        let x = self
            .self_attn_layer_norm
            .forward(&(x + self.self_attn.forward(x, &k, &v, Some(past))?)?)?;
        let (ck, cv) = cache.cross(layer);
        let x = self
            .encoder_attn_layer_norm
            .forward(&(&x + self.encoder_attn.forward(&x, &ck, &cv, None)?)?)?;
        self.final_layer_norm
            .forward(&(&x + self.ffn.forward(&x)?)?)
    }
}

/// Where positions come from.
enum Positions {
    /// BART: `BartLearnedPositionalEmbedding`, row = position + 2.
    Learned(Embedding),
    /// Marian: `MarianSinusoidalPositionalEmbedding`, computed once.
    Sinusoidal(Tensor),
}

impl Positions {
    fn forward(&self, start: usize, len: usize, device: &Device) -> Result<Tensor> {
        let (table, offset) = match self {
            Self::Learned(e) => (&e.weight, 2),
            Self::Sinusoidal(t) => (t, 0),
        };
        let n = table.dim(0)?;
        if start + len + offset > n {
            candle_core::bail!(
                "position {} is past the model's {} positions (max_position_embeddings); shorten the input or max_length",
                start + len - 1,
                n - offset
            )
        }
        let idx = Tensor::arange(
            (start + offset) as u32,
            (start + len + offset) as u32,
            device,
        )?;
        table.index_select(&idx, 0)
    }
}

/// Marian's sinusoids: for column pair j, angle = pos / 10000^(2j/dim); sin in the first half,
/// cos in the second (not interleaved). Computed in f64 and rounded, as numpy then torch do.
fn sinusoids(n_pos: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let half = dim.div_ceil(2);
    let mut out = vec![0f32; n_pos * dim];
    for pos in 0..n_pos {
        for j in 0..dim {
            let angle = pos as f64 / 10000f64.powf(2.0 * (j / 2) as f64 / dim as f64);
            if j % 2 == 0 {
                out[pos * dim + j / 2] = angle.sin() as f32;
            } else {
                out[pos * dim + half + j / 2] = angle.cos() as f32;
            }
        }
    }
    Tensor::from_vec(out, (n_pos, dim), device)
}

/// One stack (encoder or decoder) of embeddings + positions + layers.
struct Embeddings {
    tokens: Embedding,
    positions: Positions,
    layernorm_embedding: Option<LayerNorm>,
    scale: f64,
}

impl Embeddings {
    fn forward(&self, ids: &Tensor, start: usize) -> Result<Tensor> {
        let (_, s) = ids.dims2()?;
        let x = (self.tokens.forward(ids)? * self.scale)?
            .broadcast_add(&self.positions.forward(start, s, ids.device())?)?;
        match &self.layernorm_embedding {
            Some(ln) => ln.forward(&x),
            None => Ok(x),
        }
    }
}

/// `BartForConditionalGeneration` / `MarianMTModel` in eval mode.
pub struct BartForConditionalGeneration {
    pub config: BartConfig,
    enc_embed: Embeddings,
    encoder: Vec<EncoderLayer>,
    dec_embed: Embeddings,
    decoder: Vec<DecoderLayer>,
    lm_head: Tensor,
    final_logits_bias: Option<Tensor>,
    specials: SpecialIds,
    span: Span,
}

impl BartForConditionalGeneration {
    pub fn load(w: &Weights, c: &BartConfig, specials: SpecialIds) -> Result<Self> {
        let marian = match c.model_type.as_str() {
            "marian" => true,
            "bart" => false,
            other => candle_core::bail!("models/bart.rs loads bart and marian, not {other:?}"),
        };
        if c.normalize_before {
            candle_core::bail!(
                "pre-norm BART variants (normalize_before, e.g. mBART) are not supported"
            )
        }
        let act = Activation::from_name(&c.activation_function).map_err(candle_core::Error::Msg)?;
        let d = c.d_model;
        let dec_vocab = c.decoder_vocab_size.unwrap_or(c.vocab_size);
        let first = |names: &[&str], rows: usize| -> Result<Tensor> {
            for n in names {
                if w.contains(n) {
                    return w.get((rows, d), n);
                }
            }
            w.get((rows, d), names[names.len() - 1])
        };
        let enc_tokens = first(
            &["model.encoder.embed_tokens.weight", "model.shared.weight"],
            c.vocab_size,
        )?;
        let dec_tokens = first(
            &["model.decoder.embed_tokens.weight", "model.shared.weight"],
            dec_vocab,
        )?;
        let lm_head = if w.contains("lm_head.weight") {
            w.get((dec_vocab, d), "lm_head.weight")?
        } else {
            dec_tokens.clone()
        };
        let final_logits_bias = if w.contains("final_logits_bias") {
            Some(w.get((1, dec_vocab), "final_logits_bias")?)
        } else {
            None
        };
        let scale = if c.scale_embedding {
            (d as f64).sqrt()
        } else {
            1.0
        };
        let stack = |side: &str, tokens: Tensor| -> Result<Embeddings> {
            let sw = w.pp("model").pp(side);
            Ok(Embeddings {
                tokens: Embedding { weight: tokens },
                positions: if marian {
                    Positions::Sinusoidal(sinusoids(c.max_position_embeddings, d, w.device())?)
                } else {
                    Positions::Learned(Embedding::load(
                        &sw.pp("embed_positions"),
                        c.max_position_embeddings + 2,
                        d,
                    )?)
                },
                layernorm_embedding: if marian {
                    None
                } else {
                    Some(LayerNorm::load(&sw.pp("layernorm_embedding"), d, 1e-5)?)
                },
                scale,
            })
        };
        let encoder = (0..c.encoder_layers)
            .map(|i| EncoderLayer::load(&w.pp(format!("model.encoder.layers.{i}")), c, act))
            .collect::<Result<Vec<_>>>()?;
        let decoder = (0..c.decoder_layers)
            .map(|i| DecoderLayer::load(&w.pp(format!("model.decoder.layers.{i}")), c, act))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: c.clone(),
            enc_embed: stack("encoder", enc_tokens)?,
            encoder,
            dec_embed: stack("decoder", dec_tokens)?,
            decoder,
            lm_head,
            final_logits_bias,
            specials,
            span: span!(Level::TRACE, "bart"),
        })
    }
}

impl Seq2SeqModel for BartForConditionalGeneration {
    fn specials(&self) -> &SpecialIds {
        &self.specials
    }

    fn device(&self) -> &Device {
        self.lm_head.device()
    }

    fn encode(&self, ids: &Tensor) -> Result<Tensor> {
        let _g = self.span.enter();
        let mut x = self.enc_embed.forward(ids, 0)?;
        for layer in &self.encoder {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }

    fn start_decoding(&self, encoder_out: &Tensor, beams: usize) -> Result<KvCache> {
        KvCache::start(encoder_out, beams, &self.decoder, |l, enc| {
            l.encoder_attn.kv(enc)
        })
    }

    fn decode(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let _g = self.span.enter();
        let (_, t) = ids.dims2()?;
        let mut x = self.dec_embed.forward(ids, cache.len)?;
        for (i, layer) in self.decoder.iter().enumerate() {
            x = layer.forward(&x, cache, i)?;
        }
        cache.len += t;
        let logits = x.broadcast_matmul(&self.lm_head.t()?)?;
        match &self.final_logits_bias {
            Some(b) => logits.broadcast_add(b),
            None => Ok(logits),
        }
    }
}
