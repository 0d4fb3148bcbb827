//! T5 (`model_type: "t5"`: t5-small/base, T5 v1.1, flan-t5), as transformers'
//! `models/t5/modeling_t5.py`: pre-norm blocks with an RMS norm (no mean, no bias), attention
//! without the 1/sqrt(d) scale and without biases, positions as a learned bias per bucket of
//! relative distance (computed by the first block of each stack and shared by the others),
//! a ReLU or gated-GELU feed-forward. Names follow the checkpoint
//! (`encoder.block.N.layer.0.SelfAttention.q.weight`, ...).

use candle_core::{Device, Module, Result, Tensor, D};
use serde::Deserialize;
use tracing::{span, Level, Span};

use crate::models::seq2seq::{attend, split_heads, KvCache, Seq2SeqModel, SpecialIds};
use crate::nn::{Activation, Embedding, Linear, Weights};

/// `T5Config`: the fields this implementation reads.
#[derive(Clone, Debug, Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    pub num_heads: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_ff")]
    pub feed_forward_proj: String,
    /// Original T5 scales the decoder output by d_model^-1/2 before the tied LM head; v1.1
    /// does not. transformers 5 writes `scale_decoder_outputs`; older configs said it with
    /// `tie_word_embeddings: false`.
    #[serde(default)]
    pub scale_decoder_outputs: Option<bool>,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff() -> String {
    "relu".into()
}

/// `T5LayerNorm`: x / sqrt(mean(x^2) + eps) * weight.
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(w: &Weights, d: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: w.get(d, "weight")?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let var = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.weight)
    }
}

fn linear(w: &Weights, name: &str, i: usize, o: usize) -> Result<Linear> {
    Ok(Linear::new(w.pp(name).get((o, i), "weight")?, None))
}

/// `T5Attention` (self- or cross-), with the relative-position table in the first block.
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    relative_attention_bias: Option<Embedding>,
    heads: usize,
}

impl Attention {
    fn load(w: &Weights, c: &T5Config, has_bias: bool) -> Result<Self> {
        let inner = c.num_heads * c.d_kv;
        Ok(Self {
            q: linear(w, "q", c.d_model, inner)?,
            k: linear(w, "k", c.d_model, inner)?,
            v: linear(w, "v", c.d_model, inner)?,
            o: linear(w, "o", inner, c.d_model)?,
            relative_attention_bias: if has_bias {
                Some(Embedding::load(
                    &w.pp("relative_attention_bias"),
                    c.relative_attention_num_buckets,
                    c.num_heads,
                )?)
            } else {
                None
            },
            heads: c.num_heads,
        })
    }

    fn kv(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            split_heads(&self.k.forward(x)?, self.heads)?,
            split_heads(&self.v.forward(x)?, self.heads)?,
        ))
    }

    fn forward(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
        causal_past: Option<usize>,
    ) -> Result<Tensor> {
        let q = split_heads(&self.q.forward(x)?, self.heads)?;
        self.o.forward(&attend(&q, k, v, 1.0, bias, causal_past)?)
    }

    /// `compute_bias`: (1, heads, q_len, k_len) for queries at past..past+q_len.
    fn position_bias(
        &self,
        q_len: usize,
        k_len: usize,
        past: usize,
        c: &T5Config,
        bidirectional: bool,
    ) -> Result<Tensor> {
        let table = self
            .relative_attention_bias
            .as_ref()
            .expect("position_bias is asked of the first block only");
        let buckets: Vec<u32> = (0..q_len)
            .flat_map(|i| {
                (0..k_len).map(move |j| {
                    relative_position_bucket(
                        j as i64 - (past + i) as i64,
                        bidirectional,
                        c.relative_attention_num_buckets,
                        c.relative_attention_max_distance,
                    )
                })
            })
            .collect();
        let idx = Tensor::from_vec(buckets, q_len * k_len, table.weight.device())?;
        table
            .weight
            .index_select(&idx, 0)?
            .reshape((q_len, k_len, self.heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()
    }
}

/// `T5Attention._relative_position_bucket`: exact buckets for short distances, logarithmic
/// ones up to `max_distance`; the logarithm in f32 as torch computes it, so that distances on a
/// bucket boundary land where transformers puts them.
pub fn relative_position_bucket(
    rel: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> u32 {
    let mut nb = num_buckets as i64;
    let mut bucket = 0i64;
    let rel = if bidirectional {
        nb /= 2;
        if rel > 0 {
            bucket += nb;
        }
        rel.abs()
    } else {
        -rel.min(0)
    };
    let max_exact = nb / 2;
    if rel < max_exact {
        return (bucket + rel) as u32;
    }
    let denom = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large =
        max_exact + ((rel as f32 / max_exact as f32).ln() / denom * (nb - max_exact) as f32) as i64;
    (bucket + large.min(nb - 1)) as u32
}

/// `T5DenseActDense` (wi -> act -> wo) or `T5DenseGatedActDense` (act(wi_0) * wi_1 -> wo).
struct FeedForward {
    wi: Option<Linear>,
    wi_0: Option<Linear>,
    wi_1: Option<Linear>,
    wo: Linear,
    act: Activation,
}

impl FeedForward {
    fn load(w: &Weights, c: &T5Config) -> Result<Self> {
        let parts: Vec<&str> = c.feed_forward_proj.split('-').collect();
        let (gated, act) = match parts.as_slice() {
            ["gated", a] => (true, *a),
            [a] => (false, *a),
            _ => candle_core::bail!(
                "feed_forward_proj {:?} is not `act` or `gated-act`",
                c.feed_forward_proj
            ),
        };
        // transformers maps "gated-gelu" to gelu_new (the tanh form) for backward compatibility.
        let act = if gated && act == "gelu" {
            "gelu_new"
        } else {
            act
        };
        let act = Activation::from_name(act).map_err(candle_core::Error::Msg)?;
        let w = w.pp("DenseReluDense");
        Ok(Self {
            wi: if gated {
                None
            } else {
                Some(linear(&w, "wi", c.d_model, c.d_ff)?)
            },
            wi_0: if gated {
                Some(linear(&w, "wi_0", c.d_model, c.d_ff)?)
            } else {
                None
            },
            wi_1: if gated {
                Some(linear(&w, "wi_1", c.d_model, c.d_ff)?)
            } else {
                None
            },
            wo: linear(&w, "wo", c.d_ff, c.d_model)?,
            act,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = match (&self.wi, &self.wi_0, &self.wi_1) {
            (Some(wi), _, _) => self.act.apply(&wi.forward(x)?)?,
            (None, Some(w0), Some(w1)) => (self.act.apply(&w0.forward(x)?)? * w1.forward(x)?)?,
            _ => unreachable!("load sets wi or both wi_0 and wi_1"),
        };
        self.wo.forward(&h)
    }
}

/// `T5Block` of the encoder: layer.0 self-attention, layer.1 feed-forward, each pre-normed.
struct EncoderBlock {
    attn_norm: RmsNorm,
    attn: Attention,
    ff_norm: RmsNorm,
    ff: FeedForward,
}

/// `T5Block` of the decoder: layer.0 self-attention, layer.1 cross-attention, layer.2 FF.
struct DecoderBlock {
    self_norm: RmsNorm,
    self_attn: Attention,
    cross_norm: RmsNorm,
    cross_attn: Attention,
    ff_norm: RmsNorm,
    ff: FeedForward,
}

/// `T5ForConditionalGeneration` in eval mode.
pub struct T5ForConditionalGeneration {
    pub config: T5Config,
    shared: Embedding,
    encoder: Vec<EncoderBlock>,
    encoder_norm: RmsNorm,
    decoder: Vec<DecoderBlock>,
    decoder_norm: RmsNorm,
    lm_head: Tensor,
    output_scale: f64,
    specials: SpecialIds,
    span: Span,
}

impl T5ForConditionalGeneration {
    pub fn load(w: &Weights, c: &T5Config, specials: SpecialIds) -> Result<Self> {
        let (d, eps) = (c.d_model, c.layer_norm_epsilon);
        let shared = Embedding::load(&w.pp("shared"), c.vocab_size, d)?;
        let encoder = (0..c.num_layers)
            .map(|i| {
                let b = w.pp(format!("encoder.block.{i}.layer"));
                Ok(EncoderBlock {
                    attn_norm: RmsNorm::load(&b.pp("0.layer_norm"), d, eps)?,
                    attn: Attention::load(&b.pp("0.SelfAttention"), c, i == 0)?,
                    ff_norm: RmsNorm::load(&b.pp("1.layer_norm"), d, eps)?,
                    ff: FeedForward::load(&b.pp("1"), c)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder = (0..c.num_decoder_layers.unwrap_or(c.num_layers))
            .map(|i| {
                let b = w.pp(format!("decoder.block.{i}.layer"));
                Ok(DecoderBlock {
                    self_norm: RmsNorm::load(&b.pp("0.layer_norm"), d, eps)?,
                    self_attn: Attention::load(&b.pp("0.SelfAttention"), c, i == 0)?,
                    cross_norm: RmsNorm::load(&b.pp("1.layer_norm"), d, eps)?,
                    cross_attn: Attention::load(&b.pp("1.EncDecAttention"), c, false)?,
                    ff_norm: RmsNorm::load(&b.pp("2.layer_norm"), d, eps)?,
                    ff: FeedForward::load(&b.pp("2"), c)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lm_head = if w.contains("lm_head.weight") {
            w.get((c.vocab_size, d), "lm_head.weight")?
        } else {
            shared.weight.clone()
        };
        let scale = c
            .scale_decoder_outputs
            .unwrap_or(c.tie_word_embeddings != Some(false));
        Ok(Self {
            config: c.clone(),
            shared,
            encoder,
            encoder_norm: RmsNorm::load(&w.pp("encoder.final_layer_norm"), d, eps)?,
            decoder,
            decoder_norm: RmsNorm::load(&w.pp("decoder.final_layer_norm"), d, eps)?,
            lm_head,
            output_scale: if scale { (d as f64).powf(-0.5) } else { 1.0 },
            specials,
            span: span!(Level::TRACE, "t5"),
        })
    }
}

impl Seq2SeqModel for T5ForConditionalGeneration {
    fn specials(&self) -> &SpecialIds {
        &self.specials
    }

    fn device(&self) -> &Device {
        self.lm_head.device()
    }

    fn encode(&self, ids: &Tensor) -> Result<Tensor> {
        let _g = self.span.enter();
        let (_, s) = ids.dims2()?;
        let mut x = self.shared.forward(ids)?;
        let bias = self.encoder[0]
            .attn
            .position_bias(s, s, 0, &self.config, true)?;
        for b in &self.encoder {
            let h = b.attn_norm.forward(&x)?;
            let (k, v) = b.attn.kv(&h)?;
            x = (&x + b.attn.forward(&h, &k, &v, Some(&bias), None)?)?;
            x = (&x + b.ff.forward(&b.ff_norm.forward(&x)?)?)?;
        }
        self.encoder_norm.forward(&x)
    }

    fn start_decoding(&self, encoder_out: &Tensor, beams: usize) -> Result<KvCache> {
        KvCache::start(encoder_out, beams, &self.decoder, |b, enc| {
            b.cross_attn.kv(enc)
        })
    }

    fn decode(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let _g = self.span.enter();
        let (_, t) = ids.dims2()?;
        let past = cache.len;
        let mut x = self.shared.forward(ids)?;
        let bias =
            self.decoder[0]
                .self_attn
                .position_bias(t, past + t, past, &self.config, false)?;
        for (i, b) in self.decoder.iter().enumerate() {
            let h = b.self_norm.forward(&x)?;
            let (k, v) = b.self_attn.kv(&h)?;
            let (k, v) = cache.append(i, k, v)?;
            x = (&x + b.self_attn.forward(&h, &k, &v, Some(&bias), Some(past))?)?;
            let h = b.cross_norm.forward(&x)?;
            let (ck, cv) = cache.cross(i);
            x = (&x + b.cross_attn.forward(&h, &ck, &cv, None, None)?)?;
            x = (&x + b.ff.forward(&b.ff_norm.forward(&x)?)?)?;
        }
        cache.len += t;
        let x = (self.decoder_norm.forward(&x)? * self.output_scale)?;
        x.broadcast_matmul(&self.lm_head.t()?)
    }
}
