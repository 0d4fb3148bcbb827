//! DistilBERT, mirroring transformers' `models/distilbert/modeling_distilbert.py`.
//!
//! Weight names follow the checkpoint (`distilbert.transformer.layer.N.attention.q_lin.weight`,
//! `pre_classifier`, `classifier`), with or without the `distilbert.` prefix. Unlike candle's
//! version, the attention mask is the usual one (1 = attend) and dropout is real in training.

use candle_core::{Module, Result, Tensor};
use serde::Deserialize;
use tracing::{span, Level, Span};

use super::grad::WrittenOutBackward;
use crate::nn::{
    attention_bias, Activation, DropMask, Dropout, Embedding, EncoderLayerConfig,
    EncoderLayerNames, LayerNorm, Linear, ParamGrads, TransformerEncoder, Weights,
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

/// What [`Embeddings`]' backward reads: the ids and the sum before the layer norm.
pub(crate) struct EmbeddingsCache {
    ids: Tensor,    // (B, T)
    summed: Tensor, // (B, T, C)
    drop: DropMask,
}

/// `Embeddings`: word + position, LayerNorm, dropout (no token types).
pub struct Embeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    layer_norm: LayerNorm,
    dropout: Dropout,
    span: Span,
}

impl Embeddings {
    pub fn load(w: &Weights, c: &DistilBertConfig) -> Result<Self> {
        Ok(Self {
            word_embeddings: Embedding::load(&w.pp("word_embeddings"), c.vocab_size, c.dim)?,
            position_embeddings: Embedding::load(
                &w.pp("position_embeddings"),
                c.max_position_embeddings,
                c.dim,
            )?,
            layer_norm: LayerNorm::load(&w.pp("LayerNorm"), c.dim, LAYER_NORM_EPS)?,
            dropout: Dropout::new(c.dropout, w.dropout_rng()),
            span: span!(Level::TRACE, "distilbert.embeddings"),
        })
    }

    pub fn forward(&self, ids: &Tensor, train: bool) -> Result<Tensor> {
        let _g = self.span.enter();
        let pos = self.position_embeddings.positions(ids)?;
        let x = self
            .word_embeddings
            .forward(ids)?
            .broadcast_add(&self.position_embeddings.forward(&pos)?)?;
        self.dropout.forward_t(&self.layer_norm.forward(&x)?, train)
    }

    /// `forward` in training mode without a graph, keeping what `backward` reads.
    fn forward_cached(&self, ids: &Tensor) -> Result<(Tensor, EmbeddingsCache)> {
        let _g = self.span.enter();
        let pos = self.position_embeddings.positions(ids)?;
        let summed = self
            .word_embeddings
            .forward_nograd(ids)?
            .broadcast_add(&self.position_embeddings.forward_nograd(&pos)?)?;
        let h = self.layer_norm.forward_nograd(&summed)?;
        let (h, drop) = self.dropout.forward_nograd(&h, true)?;
        let cache = EmbeddingsCache {
            ids: ids.clone(),
            summed,
            drop,
        };
        Ok((h, cache))
    }

    fn backward(&self, c: EmbeddingsCache, dh: Tensor, g: &mut ParamGrads) -> Result<()> {
        let _g = self.span.enter();
        let dh = c.drop.backward(dh)?;
        let dsummed = self.layer_norm.backward(&c.summed, &dh, g)?;
        self.word_embeddings.backward(&c.ids, &dsummed, g)?;
        self.position_embeddings.backward_positions(&dsummed, g)
    }
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

/// `DistilBertModel`: embeddings and the transformer blocks (`TransformerBlock`, shared with
/// BERT in [`crate::nn::encoder`]).
pub struct DistilBertModel {
    pub config: DistilBertConfig,
    embeddings: Embeddings,
    transformer: TransformerEncoder,
    span: Span,
}

impl DistilBertModel {
    pub fn load(w: &Weights, c: &DistilBertConfig) -> Result<Self> {
        let transformer = TransformerEncoder::load(
            w,
            "transformer.layer",
            c.n_layers,
            &LAYER_NAMES,
            &c.layer_config()?,
        )?;
        Ok(Self {
            config: c.clone(),
            embeddings: Embeddings::load(&w.pp("embeddings"), c)?,
            transformer,
            span: span!(Level::TRACE, "distilbert"),
        })
    }

    /// Last hidden state (B, T, C); `attention_mask` is 1 for tokens, 0 for padding. DistilBERT
    /// has no token types: `x.token_type_ids` is ignored.
    pub fn forward(&self, x: &ModelInput, train: bool) -> Result<Tensor> {
        self.encode(x, train, false)
    }

    /// The first token's last hidden state, (B, 1, C), with the last block run for that
    /// position only (as `BertModel::forward_first_token`).
    pub fn forward_first_token(&self, x: &ModelInput, train: bool) -> Result<Tensor> {
        self.encode(x, train, true)
    }

    fn encode(&self, x: &ModelInput, train: bool, first_token_only: bool) -> Result<Tensor> {
        let _g = self.span.enter();
        let dtype = self.embeddings.word_embeddings.weight.dtype();
        let bias = attention_bias(&x.attention_mask, dtype)?; // (B, 1, 1, T)
        let h = self.embeddings.forward(&x.input_ids, train)?; // (B, T, C)
        self.transformer.forward(h, &bias, train, first_token_only)
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
    type EmbeddingsCache = EmbeddingsCache;
    type HeadCache = HeadCache;

    fn encoder(&self) -> &TransformerEncoder {
        &self.distilbert.transformer
    }
    fn word_embeddings(&self) -> &Tensor {
        &self.distilbert.embeddings.word_embeddings.weight
    }
    fn embeddings_forward(&self, x: &ModelInput) -> Result<(Tensor, EmbeddingsCache)> {
        self.distilbert.embeddings.forward_cached(&x.input_ids)
    }
    fn embeddings_backward(
        &self,
        c: EmbeddingsCache,
        dh: Tensor,
        g: &mut ParamGrads,
    ) -> Result<()> {
        self.distilbert.embeddings.backward(c, dh, g)
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
