//! DistilBERT, mirroring transformers' `models/distilbert/modeling_distilbert.py`.
//!
//! Weight names follow the checkpoint (`distilbert.transformer.layer.N.attention.q_lin.weight`,
//! `pre_classifier`, `classifier`), with or without the `distilbert.` prefix. Unlike candle's
//! version, the attention mask is the usual one (1 = attend) and dropout is real in training.

mod grad;

use candle_core::{Module, Result, Tensor};
use serde::Deserialize;
use tracing::{span, Level, Span};

use crate::nn::{
    attention_bias, self_attention, Activation, Dropout, Embedding, LayerNorm, Linear, Weights,
};

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
}

/// `MultiHeadSelfAttention`: q/k/v projections, masked softmax, output projection.
pub struct MultiHeadSelfAttention {
    q_lin: Linear,
    k_lin: Linear,
    v_lin: Linear,
    out_lin: Linear,
    dropout: Dropout,
    heads: usize,
    span: Span,
}

impl MultiHeadSelfAttention {
    pub fn load(w: &Weights, c: &DistilBertConfig) -> Result<Self> {
        if !c.dim.is_multiple_of(c.n_heads) {
            candle_core::bail!("dim {} is not a multiple of n_heads {}", c.dim, c.n_heads)
        }
        Ok(Self {
            q_lin: Linear::load(&w.pp("q_lin"), c.dim, c.dim)?,
            k_lin: Linear::load(&w.pp("k_lin"), c.dim, c.dim)?,
            v_lin: Linear::load(&w.pp("v_lin"), c.dim, c.dim)?,
            out_lin: Linear::load(&w.pp("out_lin"), c.dim, c.dim)?,
            dropout: Dropout::new(c.attention_dropout, w.dropout_rng()),
            heads: c.n_heads,
            span: span!(Level::TRACE, "distilbert.attention"),
        })
    }

    /// `queries` are the positions whose output is wanted (all of `x`, or its first token);
    /// keys and values are all of `x`.
    pub fn forward(
        &self,
        queries: &Tensor,
        x: &Tensor,
        bias: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let _g = self.span.enter();
        let ctx = self_attention(
            &self.q_lin.forward(queries)?,
            &self.k_lin.forward(x)?,
            &self.v_lin.forward(x)?,
            bias,
            self.heads,
            &self.dropout,
            train,
        )?;
        self.out_lin.forward(&ctx)
    }
}

/// `TransformerBlock`: attention + `sa_layer_norm`, then the FFN + `output_layer_norm`.
pub struct TransformerBlock {
    attention: MultiHeadSelfAttention,
    sa_layer_norm: LayerNorm,
    lin1: Linear,
    lin2: Linear,
    ffn_dropout: Dropout,
    output_layer_norm: LayerNorm,
    act: Activation,
    span: Span,
}

impl TransformerBlock {
    pub fn load(w: &Weights, c: &DistilBertConfig) -> Result<Self> {
        Ok(Self {
            attention: MultiHeadSelfAttention::load(&w.pp("attention"), c)?,
            sa_layer_norm: LayerNorm::load(&w.pp("sa_layer_norm"), c.dim, LAYER_NORM_EPS)?,
            lin1: Linear::load(&w.pp("ffn").pp("lin1"), c.dim, c.hidden_dim)?,
            lin2: Linear::load(&w.pp("ffn").pp("lin2"), c.hidden_dim, c.dim)?,
            ffn_dropout: Dropout::new(c.dropout, w.dropout_rng()),
            output_layer_norm: LayerNorm::load(&w.pp("output_layer_norm"), c.dim, LAYER_NORM_EPS)?,
            act: Activation::from_name(&c.activation).map_err(candle_core::Error::Msg)?,
            span: span!(Level::TRACE, "distilbert.layer"),
        })
    }

    /// With `first_token_only` the output is the first position's alone, (batch, 1, dim).
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        train: bool,
        first_token_only: bool,
    ) -> Result<Tensor> {
        let _g = self.span.enter();
        let queries = crate::nn::query_positions(x, first_token_only)?;
        let attended = self.attention.forward(&queries, x, bias, train)?;
        let sa = self.sa_layer_norm.forward(&(attended + queries)?)?;
        let h = self.act.apply(&self.lin1.forward(&sa)?)?;
        let ffn = self.ffn_dropout.forward_t(&self.lin2.forward(&h)?, train)?;
        self.output_layer_norm.forward(&(ffn + sa)?)
    }
}

/// `DistilBertModel`: embeddings and the transformer blocks.
pub struct DistilBertModel {
    pub config: DistilBertConfig,
    embeddings: Embeddings,
    layers: Vec<TransformerBlock>,
    span: Span,
}

impl DistilBertModel {
    pub fn load(w: &Weights, c: &DistilBertConfig) -> Result<Self> {
        let layers = (0..c.n_layers)
            .map(|i| TransformerBlock::load(&w.pp(format!("transformer.layer.{i}")), c))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: c.clone(),
            embeddings: Embeddings::load(&w.pp("embeddings"), c)?,
            layers,
            span: span!(Level::TRACE, "distilbert"),
        })
    }

    /// int8 weights for every block's projections (`nn::int8`), for inference; as
    /// `BertModel::quantize_int8`.
    pub fn quantize_int8(&mut self) -> Result<()> {
        for l in &mut self.layers {
            let a = &mut l.attention;
            for lin in [
                &mut a.q_lin,
                &mut a.k_lin,
                &mut a.v_lin,
                &mut a.out_lin,
                &mut l.lin1,
                &mut l.lin2,
            ] {
                lin.quantize_int8()?;
            }
        }
        Ok(())
    }

    /// Last hidden state (batch, seq, dim); `attention_mask` is 1 for tokens, 0 for padding.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        self.encode(input_ids, attention_mask, train, false)
    }

    /// The first token's last hidden state, (batch, 1, dim), with the last block run for that
    /// position only (as `BertModel::forward_first_token`).
    pub fn forward_first_token(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        self.encode(input_ids, attention_mask, train, true)
    }

    fn encode(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
        first_token_only: bool,
    ) -> Result<Tensor> {
        let _g = self.span.enter();
        let dtype = self.embeddings.word_embeddings.weight.dtype();
        let bias = attention_bias(attention_mask, dtype)?;
        let mut x = self.embeddings.forward(input_ids, train)?;
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x, &bias, train, first_token_only && i == last)?;
        }
        Ok(x)
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

    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let first = self
            .distilbert
            .forward_first_token(input_ids, attention_mask, train)?
            .squeeze(1)?;
        let x = self.pre_classifier.forward(&first)?.relu()?;
        self.classifier.forward(&self.dropout.forward_t(&x, train)?)
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
