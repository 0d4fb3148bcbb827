//! What the encoder-decoder architectures (`bart`, `t5`) share: the interface
//! the search (`generation::beam`) drives, the decoder's key/value cache with beam reordering, the
//! attention arithmetic, and loading an HF folder by its `model_type`.

pub mod bart;
pub mod t5;

use std::path::Path;

use anyhow::{bail, Context};
use candle_core::{Device, Result, Tensor, D};

use crate::nn::Weights;
use crate::util::read_json_if_exists;

/// Token ids the search needs, from config.json / generation_config.json.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecialIds {
    pub decoder_start: u32,
    pub eos: Vec<u32>,
    pub vocab_size: usize,
}

/// An encoder-decoder with a language-model head, in eval mode.
pub trait Seq2SeqModel: Send {
    fn specials(&self) -> &SpecialIds;
    /// Where the weights live; inputs are made there.
    fn device(&self) -> &Device;
    /// Encoder hidden states for one input, ids (1, s) -> (1, s, d).
    fn encode(&self, ids: &Tensor) -> Result<Tensor>;
    /// A fresh cache for `beams` hypotheses decoding against `encoder_out` (cross-attention
    /// keys and values are computed here, once).
    fn start_decoding(&self, encoder_out: &Tensor, beams: usize) -> Result<KvCache>;
    /// Logits (n, t, vocab) for decoder ids (n, t) following what the cache holds.
    fn decode(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor>;
}

/// Per decoder layer: the self-attention keys/values so far (n, heads, len, head_dim) and the
/// cross-attention keys/values of the encoder output.
pub struct KvCache {
    self_kv: Vec<Option<(Tensor, Tensor)>>,
    cross_kv: Vec<(Tensor, Tensor)>,
    /// Decoder positions already processed.
    pub len: usize,
}

impl KvCache {
    pub fn new(cross_kv: Vec<(Tensor, Tensor)>) -> Self {
        Self {
            self_kv: vec![None; cross_kv.len()],
            cross_kv,
            len: 0,
        }
    }

    /// The cache a decoding of `beams` hypotheses starts from: the encoder output (1, s, d)
    /// repeated per beam, and each decoder layer's cross-attention keys and values computed
    /// from it once (`cross_kv`).
    pub fn start<L>(
        encoder_out: &Tensor,
        beams: usize,
        layers: &[L],
        cross_kv: impl Fn(&L, &Tensor) -> Result<(Tensor, Tensor)>,
    ) -> Result<Self> {
        let enc = encoder_out.repeat((beams, 1, 1))?;
        let cross = layers
            .iter()
            .map(|l| cross_kv(l, &enc))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::new(cross))
    }

    /// Appends this step's keys/values for `layer`, returns all of them.
    pub fn append(&mut self, layer: usize, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let kv = match self.self_kv[layer].take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        self.self_kv[layer] = Some(kv.clone());
        Ok(kv)
    }

    pub fn cross(&self, layer: usize) -> (Tensor, Tensor) {
        self.cross_kv[layer].clone()
    }

    /// Beam search: hypothesis i continues hypothesis `from[i]`. Cross keys/values are the
    /// same for every hypothesis of one input, so only the self-attention cache moves.
    pub fn reorder(&mut self, from: &[u32]) -> Result<()> {
        let Some(Some((k0, _))) = self.self_kv.first() else {
            return Ok(());
        };
        let idx = Tensor::new(from, k0.device())?;
        for kv in self.self_kv.iter_mut().flatten() {
            *kv = (kv.0.index_select(&idx, 0)?, kv.1.index_select(&idx, 0)?);
        }
        Ok(())
    }
}

/// (n, t, heads * d) -> (n, heads, t, d).
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (n, t, hd) = x.dims3()?;
    x.reshape((n, t, heads, hd / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// softmax(q k^T * scale + bias + causal mask) v, heads merged back: (n, t, heads * d).
/// `causal_past`: query i sits at position past + i and sees keys 0..=past + i.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    bias: Option<&Tensor>,
    causal_past: Option<usize>,
) -> Result<Tensor> {
    let (n, h, t, d) = q.dims4()?;
    let kt = k.dim(2)?;
    let mut scores = q.matmul(&k.t()?)?;
    if scale != 1.0 {
        scores = (scores * scale)?;
    }
    if let Some(b) = bias {
        scores = scores.broadcast_add(b)?;
    }
    if let Some(past) = causal_past {
        if t > 1 {
            scores = scores.broadcast_add(&causal_mask(t, kt, past, q.device())?)?;
        }
    }
    let p = candle_nn::ops::softmax_last_dim(&scores)?;
    p.matmul(v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n, t, h * d))
}

fn causal_mask(t: usize, kt: usize, past: usize, device: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..kt).map(move |j| {
                if j <= past + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(m, (t, kt), device)
}

/// log_softmax over the last dimension (the search scores hypotheses in log-probabilities).
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// Which architecture a folder holds, from config.json's `model_type` (None without one).
pub fn model_type(dir: &Path) -> anyhow::Result<Option<String>> {
    let v = read_json_if_exists(&dir.join("config.json"))?;
    Ok(v["model_type"].as_str().map(String::from))
}

pub const SEQ2SEQ_TYPES: &[&str] = &["marian", "bart", "t5"];

/// Loads a Marian, BART or T5 checkpoint folder (config.json + safetensors).
pub fn load_folder(dir: &Path, device: &Device) -> anyhow::Result<Box<dyn Seq2SeqModel>> {
    let cfg_path = dir.join("config.json");
    let v = read_json_if_exists(&cfg_path)?;
    if v.is_null() {
        bail!("no config.json in {}", dir.display())
    }
    let mt = v["model_type"].as_str().unwrap_or("");
    let w = Weights::from_folder(dir, device)?;
    let id = |field: &str| v[field].as_u64().map(|x| x as u32);
    let specials = |vocab: usize, default_start: Option<u32>| -> anyhow::Result<SpecialIds> {
        let eos = match &v["eos_token_id"] {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect(),
            x => x.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        };
        if eos.is_empty() {
            bail!("{}: eos_token_id is missing", cfg_path.display())
        }
        let decoder_start = id("decoder_start_token_id")
            .or(default_start)
            .with_context(|| {
                format!("{}: decoder_start_token_id is missing", cfg_path.display())
            })?;
        Ok(SpecialIds {
            decoder_start,
            eos,
            vocab_size: vocab,
        })
    };
    let field_err = |e: serde_json::Error| {
        anyhow::anyhow!("{}: {e} (a field of the {mt} config)", cfg_path.display())
    };
    match mt {
        "marian" | "bart" => {
            let c: bart::BartConfig = serde_json::from_value(v.clone()).map_err(field_err)?;
            let s = specials(c.decoder_vocab_size.unwrap_or(c.vocab_size), None)?;
            Ok(Box::new(bart::BartForConditionalGeneration::load(
                &w, &c, s,
            )?))
        }
        "t5" => {
            let c: t5::T5Config = serde_json::from_value(v.clone()).map_err(field_err)?;
            let s = specials(c.vocab_size, id("pad_token_id"))?;
            Ok(Box::new(t5::T5ForConditionalGeneration::load(&w, &c, s)?))
        }
        other => bail!(
            "{}: model_type {other:?} is not a seq2seq architecture lmkit knows ({})",
            cfg_path.display(),
            SEQ2SEQ_TYPES.join(", ")
        ),
    }
}
