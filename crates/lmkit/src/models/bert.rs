//! BERT (covers MiniLM, multilingual-e5 and other `model_type: "bert"` checkpoints).
//!
//! Mirrors transformers' `models/bert/modeling_bert.py`: names follow the checkpoint
//! (`embeddings.word_embeddings.weight`, `encoder.layer.N.attention.self.query.weight`, ...),
//! with or without the `bert.` prefix. Dropout is real in training and off in eval.

use candle_core::{Module, Result, Tensor, D};
use serde::Deserialize;
use tracing::{span, Level, Span};

mod grad;

use crate::nn::{
    attention_bias, self_attention, Activation, Dropout, Embedding, LayerNorm, Linear, Weights,
};

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

/// `BertEmbeddings`: word + position + token type, then LayerNorm and dropout.
pub struct BertEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
    dropout: Dropout,
    span: Span,
}

impl BertEmbeddings {
    pub fn load(w: &Weights, c: &BertConfig) -> Result<Self> {
        Ok(Self {
            word_embeddings: Embedding::load(
                &w.pp("word_embeddings"),
                c.vocab_size,
                c.hidden_size,
            )?,
            position_embeddings: Embedding::load(
                &w.pp("position_embeddings"),
                c.max_position_embeddings,
                c.hidden_size,
            )?,
            token_type_embeddings: Embedding::load(
                &w.pp("token_type_embeddings"),
                c.type_vocab_size,
                c.hidden_size,
            )?,
            layer_norm: LayerNorm::load(&w.pp("LayerNorm"), c.hidden_size, c.layer_norm_eps)?,
            dropout: Dropout::new(c.hidden_dropout_prob, w.dropout_rng()),
            span: span!(Level::TRACE, "bert.embeddings"),
        })
    }

    pub fn forward(&self, ids: &Tensor, token_type_ids: &Tensor, train: bool) -> Result<Tensor> {
        let _g = self.span.enter();
        let pos = self.position_embeddings.positions(ids)?;
        let x = self
            .word_embeddings
            .forward(ids)?
            .broadcast_add(&self.position_embeddings.forward(&pos)?)?
            .add(&self.token_type_embeddings.forward(token_type_ids)?)?;
        let x = self.layer_norm.forward(&x)?;
        self.dropout.forward_t(&x, train)
    }
}

/// `BertSelfAttention` + `BertSelfOutput`: multi-head attention, projection, residual, norm.
pub struct BertAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    layer_norm: LayerNorm,
    attn_dropout: Dropout,
    out_dropout: Dropout,
    heads: usize,
    span: Span,
}

impl BertAttention {
    pub fn load(w: &Weights, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        if !h.is_multiple_of(c.num_attention_heads) {
            candle_core::bail!(
                "hidden_size {h} is not a multiple of num_attention_heads {}",
                c.num_attention_heads
            )
        }
        let sw = w.pp("self");
        Ok(Self {
            query: Linear::load(&sw.pp("query"), h, h)?,
            key: Linear::load(&sw.pp("key"), h, h)?,
            value: Linear::load(&sw.pp("value"), h, h)?,
            output: Linear::load(&w.pp("output").pp("dense"), h, h)?,
            layer_norm: LayerNorm::load(&w.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
            attn_dropout: Dropout::new(c.attention_probs_dropout_prob, w.dropout_rng()),
            out_dropout: Dropout::new(c.hidden_dropout_prob, w.dropout_rng()),
            heads: c.num_attention_heads,
            span: span!(Level::TRACE, "bert.attention"),
        })
    }

    /// `queries` are the positions whose output is wanted: `x` itself, or its first token when
    /// only that is read (see `BertModel::forward_first_token`). Keys and values are all of `x`.
    pub fn forward(
        &self,
        queries: &Tensor,
        x: &Tensor,
        bias: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let _g = self.span.enter();
        let ctx = self_attention(
            &self.query.forward(queries)?,
            &self.key.forward(x)?,
            &self.value.forward(x)?,
            bias,
            self.heads,
            &self.attn_dropout,
            train,
        )?;
        let out = self
            .out_dropout
            .forward_t(&self.output.forward(&ctx)?, train)?;
        self.layer_norm.forward(&(out + queries)?)
    }
}

/// `BertLayer`: attention, then `BertIntermediate` (dense + activation) and `BertOutput`.
pub struct BertLayer {
    attention: BertAttention,
    intermediate: Linear,
    output: Linear,
    layer_norm: LayerNorm,
    dropout: Dropout,
    act: Activation,
    span: Span,
}

impl BertLayer {
    pub fn load(w: &Weights, c: &BertConfig) -> Result<Self> {
        let act = Activation::from_name(&c.hidden_act).map_err(candle_core::Error::Msg)?;
        Ok(Self {
            attention: BertAttention::load(&w.pp("attention"), c)?,
            intermediate: Linear::load(
                &w.pp("intermediate").pp("dense"),
                c.hidden_size,
                c.intermediate_size,
            )?,
            output: Linear::load(
                &w.pp("output").pp("dense"),
                c.intermediate_size,
                c.hidden_size,
            )?,
            layer_norm: LayerNorm::load(
                &w.pp("output").pp("LayerNorm"),
                c.hidden_size,
                c.layer_norm_eps,
            )?,
            dropout: Dropout::new(c.hidden_dropout_prob, w.dropout_rng()),
            act,
            span: span!(Level::TRACE, "bert.layer"),
        })
    }

    /// With `first_token_only` the output is (batch, 1, hidden): the first position's, computed
    /// alone (its query against every key), which is all a classification head reads.
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        train: bool,
        first_token_only: bool,
    ) -> Result<Tensor> {
        let _g = self.span.enter();
        let queries = crate::nn::query_positions(x, first_token_only)?;
        let a = self.attention.forward(&queries, x, bias, train)?;
        let h = self.act.apply(&self.intermediate.forward(&a)?)?;
        let out = self.dropout.forward_t(&self.output.forward(&h)?, train)?;
        self.layer_norm.forward(&(out + a)?)
    }
}

/// `BertModel`: embeddings, encoder layers and (optionally) the pooler.
pub struct BertModel {
    pub config: BertConfig,
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    pooler: Option<Linear>,
    span: Span,
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
        let layers = (0..c.num_hidden_layers)
            .map(|i| BertLayer::load(&w.pp(format!("encoder.layer.{i}")), c))
            .collect::<Result<Vec<_>>>()?;
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
            embeddings: BertEmbeddings::load(&w.pp("embeddings"), c)?,
            layers,
            pooler,
            span: span!(Level::TRACE, "bert"),
        })
    }

    /// int8 weights for every encoder projection (`nn::int8`), for inference. The embeddings,
    /// pooler and head stay f32: they are under 1% of the work.
    pub fn quantize_int8(&mut self) -> Result<()> {
        for l in &mut self.layers {
            let a = &mut l.attention;
            for lin in [
                &mut a.query,
                &mut a.key,
                &mut a.value,
                &mut a.output,
                &mut l.intermediate,
                &mut l.output,
            ] {
                lin.quantize_int8()?;
            }
        }
        Ok(())
    }

    /// Last hidden state (batch, seq, hidden).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        self.encode(input_ids, attention_mask, token_type_ids, train, false)
    }

    /// The last hidden state of the first token only, (batch, 1, hidden): equal to
    /// `forward(..).narrow(1, 0, 1)`, but the last layer runs its query projection, attention,
    /// output projection and feed-forward on that one position instead of all of them (which
    /// is ~1/7 of a 6-layer encoder's matmul work thrown away under a [CLS] head).
    pub fn forward_first_token(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        self.encode(input_ids, attention_mask, token_type_ids, train, true)
    }

    fn encode(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
        first_token_only: bool,
    ) -> Result<Tensor> {
        let _g = self.span.enter();
        let dtype = self.embeddings.word_embeddings.weight.dtype();
        let tt = match token_type_ids {
            Some(t) => t.clone(),
            None => input_ids.zeros_like()?,
        };
        let bias = attention_bias(attention_mask, dtype)?;
        let mut x = self.embeddings.forward(input_ids, &tt, train)?;
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x, &bias, train, first_token_only && i == last)?;
        }
        Ok(x)
    }

    /// `BertPooler`: tanh(dense(hidden state of the first token)).
    pub fn pool(&self, hidden: &Tensor) -> Result<Tensor> {
        let pooler = self
            .pooler
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("model was loaded without a pooler".into()))?;
        pooler.forward(&hidden.narrow(1, 0, 1)?.squeeze(1)?)?.tanh()
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

    /// Logits (batch, num_labels).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let h = self
            .bert
            .forward_first_token(input_ids, attention_mask, token_type_ids, train)?;
        let pooled = self.bert.pool(&h)?;
        self.classifier
            .forward(&self.dropout.forward_t(&pooled, train)?)
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
