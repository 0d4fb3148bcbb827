//! BERT (covers MiniLM, multilingual-e5 and other `model_type: "bert"` checkpoints).
//!
//! Mirrors transformers' `models/bert/modeling_bert.py`: names follow the checkpoint
//! (`embeddings.word_embeddings.weight`, `encoder.layer.N.attention.self.query.weight`, ...),
//! with or without the `bert.` prefix. Dropout is real in training and off in eval.

use candle_core::{Module, Result, Tensor, D};
use serde::Deserialize;

use super::grad::WrittenOutBackward;
use crate::nn::{
    Activation, DropMask, Dropout, EmbeddingsConfig, EncoderLayerConfig, EncoderLayerNames, Linear,
    ParamGrads, TransformerEncoder, Weights,
};
use crate::tokenize::ModelInput;

/// `BertConfig`: the fields of config.json this implementation reads.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default = "default_pos_type")]
    pub position_embedding_type: String,
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_max_pos() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_init_range() -> f64 {
    0.02
}
fn default_eps() -> f64 {
    1e-12
}
fn default_pos_type() -> String {
    "absolute".into()
}

/// Where `BertLayer`'s tensors sit below `encoder.layer.N`.
const LAYER_NAMES: EncoderLayerNames = EncoderLayerNames {
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    output: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    intermediate: "intermediate.dense",
    ffn_output: "output.dense",
    output_norm: "output.LayerNorm",
};

impl BertConfig {
    fn embeddings_config(&self) -> EmbeddingsConfig {
        EmbeddingsConfig {
            vocab: self.vocab_size,
            max_positions: self.max_position_embeddings,
            token_types: Some(self.type_vocab_size),
            hidden: self.hidden_size,
            layer_norm_eps: self.layer_norm_eps,
            dropout: self.hidden_dropout_prob,
        }
    }

    fn layer_config(&self) -> Result<EncoderLayerConfig> {
        Ok(EncoderLayerConfig {
            hidden: self.hidden_size,
            heads: self.num_attention_heads,
            intermediate: self.intermediate_size,
            layer_norm_eps: self.layer_norm_eps,
            act: Activation::from_name(&self.hidden_act).map_err(candle_core::Error::Msg)?,
            attention_dropout: self.attention_probs_dropout_prob,
            hidden_dropout: self.hidden_dropout_prob,
            dropout_after_attention: true,
        })
    }
}

/// `BertModel`: `BertEmbeddings` and `BertEncoder` (their layers shared with DistilBERT in
/// [`crate::nn::encoder`]) and, optionally, `BertPooler`.
pub struct BertModel {
    pub config: BertConfig,
    encoder: TransformerEncoder,
    pooler: Option<Linear>,
}

impl BertModel {
    /// `w` points at the model's root (where `embeddings.` lives, or `bert.` for heads).
    /// With `pooler`, the pooler is loaded (or initialised when the checkpoint has none).
    pub fn load(w: &Weights, c: &BertConfig, pooler: bool) -> Result<Self> {
        if c.position_embedding_type != "absolute" {
            candle_core::bail!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                c.position_embedding_type
            )
        }
        let encoder = TransformerEncoder::load(
            w,
            &c.embeddings_config(),
            "encoder.layer",
            c.num_hidden_layers,
            &LAYER_NAMES,
            &c.layer_config()?,
        )?;
        let pooler = if pooler {
            Some(Linear::load_or_init(
                &w.pp("pooler").pp("dense"),
                c.hidden_size,
                c.hidden_size,
                c.initializer_range,
            )?)
        } else {
            None
        };
        Ok(Self {
            config: c.clone(),
            encoder,
            pooler,
        })
    }

    /// Last hidden state (B, T, C).
    pub fn forward(&self, x: &ModelInput, train: bool) -> Result<Tensor> {
        self.encoder.forward(x, train, false)
    }

    /// The last hidden state of the first token only, (B, 1, C): equal to
    /// `forward(..).narrow(1, 0, 1)`, but the last layer runs its query projection, attention,
    /// output projection and feed-forward on that one position instead of all of them.
    pub fn forward_first_token(&self, x: &ModelInput, train: bool) -> Result<Tensor> {
        self.encoder.forward(x, train, true)
    }

    fn pooler(&self) -> Result<&Linear> {
        self.pooler
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("model was loaded without a pooler".into()))
    }

    /// `BertPooler`: tanh(dense(hidden state of the first token)), (B, T, C) -> (B, C).
    pub fn pool(&self, hidden: &Tensor) -> Result<Tensor> {
        self.pooler()?
            .forward(&hidden.narrow(1, 0, 1)?.squeeze(1)?)?
            .tanh()
    }
}

/// `BertForSequenceClassification`: pooler -> dropout -> classifier.
pub struct BertForSequenceClassification {
    pub bert: BertModel,
    dropout: Dropout,
    classifier: Linear,
}

impl BertForSequenceClassification {
    /// `w` is the checkpoint root; the body is read under `bert.` (or without the prefix).
    pub fn load(w: &Weights, c: &BertConfig, num_labels: usize) -> Result<Self> {
        let bert = BertModel::load(&w.pp("bert"), c, true)?;
        Ok(Self {
            bert,
            dropout: Dropout::new(
                c.classifier_dropout.unwrap_or(c.hidden_dropout_prob),
                w.dropout_rng(),
            ),
            classifier: Linear::load_or_init(
                &w.pp("classifier"),
                c.hidden_size,
                num_labels,
                c.initializer_range,
            )?,
        })
    }

    /// Logits (B, num_labels).
    pub fn forward(&self, x: &ModelInput, train: bool) -> Result<Tensor> {
        let h = self.bert.forward_first_token(x, train)?; // (B, 1, C)
        let pooled = self.bert.pool(&h)?; // (B, C)
        self.classifier
            .forward(&self.dropout.forward_t(&pooled, train)?)
    }
}

/// What the head's backward reads.
pub(crate) struct HeadCache {
    first: Tensor,   // (B, C) the first token's hidden state
    pooled: Tensor,  // (B, C) tanh output
    dropped: Tensor, // (B, C)
    drop: DropMask,
}

impl WrittenOutBackward for BertForSequenceClassification {
    type HeadCache = HeadCache;

    fn encoder(&self) -> &TransformerEncoder {
        &self.bert.encoder
    }

    fn head_forward(&self, first: &Tensor) -> Result<(Tensor, HeadCache)> {
        let pooler = self.bert.pooler()?;
        let pooled = pooler.forward_nograd(first)?.tanh()?;
        let (dropped, drop) = self.dropout.forward_nograd(&pooled, true)?;
        let logits = self.classifier.forward_nograd(&dropped)?;
        let cache = HeadCache {
            first: first.clone(),
            pooled,
            dropped,
            drop,
        };
        Ok((logits, cache))
    }

    fn head_backward(&self, c: HeadCache, dlogits: &Tensor, g: &mut ParamGrads) -> Result<Tensor> {
        let ddropped = self.classifier.backward(&c.dropped, dlogits, g)?;
        let dpooled = c.drop.backward(ddropped)?;
        let dpre = (dpooled * c.pooled.sqr()?.affine(-1.0, 1.0)?)?; // tanh' = 1 - tanh^2
        self.bert.pooler()?.backward(&c.first, &dpre, g)
    }
}

/// Mean of hidden states over the attended tokens (sentence-transformers' mean pooling).
pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
    let m = attention_mask
        .to_dtype(hidden.dtype())?
        .unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&m)?.sum(1)?;
    let counts = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    summed.broadcast_div(&counts)
}

/// For tests and benchmarks: the tensors of a BERT with random weights, initialised as
/// transformers' `_init_weights` does (normal(0, initializer_range), LayerNorm 1/0, bias 0).
pub fn random_tensors(
    c: &BertConfig,
    prefix: &str,
    seed: u64,
) -> Result<std::collections::HashMap<String, Tensor>> {
    let mut r = crate::nn::weights::RandomTensors::new(prefix, c.initializer_range, seed);
    let h = c.hidden_size;
    r.normal("embeddings.word_embeddings.weight", (c.vocab_size, h))?;
    r.normal(
        "embeddings.position_embeddings.weight",
        (c.max_position_embeddings, h),
    )?;
    r.normal(
        "embeddings.token_type_embeddings.weight",
        (c.type_vocab_size, h),
    )?;
    r.layer_norm("embeddings.LayerNorm", h)?;
    for l in 0..c.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        for n in ["query", "key", "value"] {
            r.linear(&format!("{p}.attention.self.{n}"), h, h)?;
        }
        r.linear(&format!("{p}.attention.output.dense"), h, h)?;
        r.layer_norm(&format!("{p}.attention.output.LayerNorm"), h)?;
        r.linear(&format!("{p}.intermediate.dense"), h, c.intermediate_size)?;
        r.linear(&format!("{p}.output.dense"), c.intermediate_size, h)?;
        r.layer_norm(&format!("{p}.output.LayerNorm"), h)?;
    }
    r.linear("pooler.dense", h, h)?;
    Ok(r.into_map())
}
