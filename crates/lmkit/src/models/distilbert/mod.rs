//! DistilBERT, mirroring transformers' `models/distilbert/modeling_distilbert.py`.
//!
//! Weight names follow the checkpoint (`distilbert.transformer.layer.N.attention.q_lin.weight`,
//! `pre_classifier`, `classifier`), with or without the `distilbert.` prefix. Unlike candle's
//! version, the attention mask is the usual one (1 = attend) and dropout is real in training.

use candle_core::{Module, Result, Tensor};
use serde::Deserialize;

use super::grad::WrittenOutBackward;
use crate::nn::{
    Activation, DropMask, Dropout, EmbeddingsConfig, EncoderLayerConfig, EncoderLayerNames, Linear,
    ParamGrads, TransformerEncoder, Weights,
};
use crate::tokenize::ModelInput;

/// DistilBERT's layer norms use a fixed epsilon (not in its config).
const LAYER_NORM_EPS: f64 = 1e-12;

/// `DistilBertConfig`: the fields of config.json this implementation reads.
#[derive(Clone, Debug, Deserialize)]
pub struct DistilBertConfig {
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub hidden_dim: usize,
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    #[serde(default = "default_dropout")]
    pub attention_dropout: f64,
    #[serde(default = "default_act")]
    pub activation: String,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default = "default_seq_dropout")]
    pub seq_classif_dropout: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

fn default_dropout() -> f64 {
    0.1
}
fn default_seq_dropout() -> f64 {
    0.2
}
fn default_act() -> String {
    "gelu".into()
}
fn default_max_pos() -> usize {
    512
}
fn default_init_range() -> f64 {
    0.02
}

/// Where `TransformerBlock`'s tensors sit below `transformer.layer.N`.
const LAYER_NAMES: EncoderLayerNames = EncoderLayerNames {
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    output: "attention.out_lin",
    attention_norm: "sa_layer_norm",
    intermediate: "ffn.lin1",
    ffn_output: "ffn.lin2",
    output_norm: "output_layer_norm",
};

impl DistilBertConfig {
    fn embeddings_config(&self) -> EmbeddingsConfig {
        EmbeddingsConfig {
            vocab: self.vocab_size,
            max_positions: self.max_position_embeddings,
            token_types: None,
            hidden: self.dim,
            layer_norm_eps: LAYER_NORM_EPS,
            dropout: self.dropout,
        }
    }

    fn layer_config(&self) -> Result<EncoderLayerConfig> {
        Ok(EncoderLayerConfig {
            hidden: self.dim,
            heads: self.n_heads,
            intermediate: self.hidden_dim,
            layer_norm_eps: LAYER_NORM_EPS,
            act: Activation::from_name(&self.activation).map_err(candle_core::Error::Msg)?,
            attention_dropout: self.attention_dropout,
            hidden_dropout: self.dropout,
            dropout_after_attention: false,
        })
    }
}

/// `DistilBertModel`: `Embeddings` and `Transformer` (its `TransformerBlock`s shared with BERT
/// in [`crate::nn::encoder`]).
pub struct DistilBertModel {
    pub config: DistilBertConfig,
    transformer: TransformerEncoder,
}

impl DistilBertModel {
    pub fn load(w: &Weights, c: &DistilBertConfig) -> Result<Self> {
        let transformer = TransformerEncoder::load(
            w,
            &c.embeddings_config(),
            "transformer.layer",
            c.n_layers,
            &LAYER_NAMES,
            &c.layer_config()?,
        )?;
        Ok(Self {
            config: c.clone(),
            transformer,
        })
    }

    /// Last hidden state (B, T, C); `attention_mask` is 1 for tokens, 0 for padding. DistilBERT
    /// has no token types: `x.token_type_ids` is ignored.
    pub fn forward(&self, x: &ModelInput, train: bool) -> Result<Tensor> {
        self.transformer.forward(x, train, false)
    }

    /// The first token's last hidden state, (B, 1, C), with the last block run for that
    /// position only (as `BertModel::forward_first_token`).
    pub fn forward_first_token(&self, x: &ModelInput, train: bool) -> Result<Tensor> {
        self.transformer.forward(x, train, true)
    }
}

/// `DistilBertForSequenceClassification`: first token -> pre_classifier -> ReLU -> dropout ->
/// classifier.
pub struct DistilBertForSequenceClassification {
    pub distilbert: DistilBertModel,
    pre_classifier: Linear,
    classifier: Linear,
    dropout: Dropout,
}

impl DistilBertForSequenceClassification {
    pub fn load(w: &Weights, c: &DistilBertConfig, num_labels: usize) -> Result<Self> {
        Ok(Self {
            distilbert: DistilBertModel::load(&w.pp("distilbert"), c)?,
            pre_classifier: Linear::load_or_init(
                &w.pp("pre_classifier"),
                c.dim,
                c.dim,
                c.initializer_range,
            )?,
            classifier: Linear::load_or_init(
                &w.pp("classifier"),
                c.dim,
                num_labels,
                c.initializer_range,
            )?,
            dropout: Dropout::new(c.seq_classif_dropout, w.dropout_rng()),
        })
    }

    /// Logits (B, num_labels).
    pub fn forward(&self, x: &ModelInput, train: bool) -> Result<Tensor> {
        let first = self.distilbert.forward_first_token(x, train)?.squeeze(1)?; // (B, C)
        let h = self.pre_classifier.forward(&first)?.relu()?;
        self.classifier.forward(&self.dropout.forward_t(&h, train)?)
    }
}

/// What the head's backward reads.
pub(crate) struct HeadCache {
    first: Tensor,   // (B, C) the first token's hidden state
    pre: Tensor,     // (B, C) pre_classifier output, before the ReLU
    dropped: Tensor, // (B, C)
    drop: DropMask,
}

impl WrittenOutBackward for DistilBertForSequenceClassification {
    type HeadCache = HeadCache;

    fn encoder(&self) -> &TransformerEncoder {
        &self.distilbert.transformer
    }

    fn head_forward(&self, first: &Tensor) -> Result<(Tensor, HeadCache)> {
        let pre = self.pre_classifier.forward_nograd(first)?;
        let (dropped, drop) = self.dropout.forward_nograd(&pre.relu()?, true)?;
        let logits = self.classifier.forward_nograd(&dropped)?;
        let cache = HeadCache {
            first: first.clone(),
            pre,
            dropped,
            drop,
        };
        Ok((logits, cache))
    }

    fn head_backward(&self, c: HeadCache, dlogits: &Tensor, g: &mut ParamGrads) -> Result<Tensor> {
        let ddropped = self.classifier.backward(&c.dropped, dlogits, g)?;
        let drelu = c.drop.backward(ddropped)?;
        // relu' = [pre > 0], as PyTorch (candle takes >= 0; the two differ only at exactly 0).
        let dpre = (drelu * c.pre.gt(0.0)?.to_dtype(c.pre.dtype())?)?;
        self.pre_classifier.backward(&c.first, &dpre, g)
    }
}

/// For tests and benchmarks: the tensors of a DistilBERT with random weights.
pub fn random_tensors(
    c: &DistilBertConfig,
    prefix: &str,
    seed: u64,
) -> Result<std::collections::HashMap<String, Tensor>> {
    let mut r = crate::nn::weights::RandomTensors::new(prefix, c.initializer_range, seed);
    r.normal("embeddings.word_embeddings.weight", (c.vocab_size, c.dim))?;
    r.normal(
        "embeddings.position_embeddings.weight",
        (c.max_position_embeddings, c.dim),
    )?;
    r.layer_norm("embeddings.LayerNorm", c.dim)?;
    for l in 0..c.n_layers {
        let p = format!("transformer.layer.{l}");
        for n in ["q_lin", "k_lin", "v_lin", "out_lin"] {
            r.linear(&format!("{p}.attention.{n}"), c.dim, c.dim)?;
        }
        r.layer_norm(&format!("{p}.sa_layer_norm"), c.dim)?;
        r.linear(&format!("{p}.ffn.lin1"), c.dim, c.hidden_dim)?;
        r.linear(&format!("{p}.ffn.lin2"), c.hidden_dim, c.dim)?;
        r.layer_norm(&format!("{p}.output_layer_norm"), c.dim)?;
    }
    Ok(r.into_map())
}
