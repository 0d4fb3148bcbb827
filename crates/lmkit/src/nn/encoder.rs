//! The post-LN Transformer encoder layer that BERT and DistilBERT share, written once:
//! transformers' `BertLayer` (+ `BertAttention`, `BertIntermediate`, `BertOutput`) in
//! `models/bert/modeling_bert.py`, and `TransformerBlock` (+ `MultiHeadSelfAttention`, `FFN`) in
//! `models/distilbert/modeling_distilbert.py`. The two differ only in their weights' names and in
//! one dropout (BERT drops the attention's projected output, DistilBERT does not):
//!
//! ```text
//! a = LN1(queries + drop_o(O(attention(Q queries, K x, V x))))
//! y = LN2(a + drop_f(Out(act(In(a)))))
//! ```
//!
//! Each layer has three passes, side by side: `forward` (inference, and training through candle's
//! autograd), `forward_cached` (training without a graph, keeping what the backward reads) and
//! `backward`, which reads as `forward_cached` in reverse. The written-out pair exists because
//! autograd starts every gradient as a zero tensor and adds into it: two extra passes over every
//! activation and weight gradient (memset and `binary_map` were ~7% of a training step). Here
//! each gradient is written once, and added to only where two paths meet: a residual, or the
//! three projections that read the same input. `tests/gradients.rs` checks it against autograd.
//!
//! Shapes: B batch, T tokens (keys), Q query positions (T, or 1 for the first token alone),
//! C hidden, F feed-forward width.

use candle_core::{Module, Result, Tensor, D};
use tracing::{span, Level, Span};

use super::kernels::matmul::{
    attention_context, attention_context_backward, attention_scores, attention_scores_backward,
};
use super::kernels::ops::{gelu_erf_with_grad, masked_softmax, softmax_backward};
use super::{
    attention_bias, query_positions, Activation, DropMask, Dropout, Embedding, LayerNorm, Linear,
    ParamGrads, Weights,
};
use crate::tokenize::ModelInput;

/// Where each tensor of a layer sits in the checkpoint, below the layer's own prefix.
#[derive(Clone, Copy, Debug)]
pub struct EncoderLayerNames {
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub output: &'static str,
    pub attention_norm: &'static str,
    pub intermediate: &'static str,
    pub ffn_output: &'static str,
    pub output_norm: &'static str,
}

/// The sizes and rates of a layer, read off each architecture's config.
#[derive(Clone, Copy, Debug)]
pub struct EncoderLayerConfig {
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub layer_norm_eps: f64,
    pub act: Activation,
    pub attention_dropout: f64,
    pub hidden_dropout: f64,
    /// BERT's `BertSelfOutput` drops the projected attention output; DistilBERT does not.
    pub dropout_after_attention: bool,
}

/// One post-LN encoder layer (`BertLayer` / `TransformerBlock`).
pub struct EncoderLayer {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub attn_dropout: Dropout,
    pub output: Linear,
    pub output_dropout: Option<Dropout>,
    pub attention_norm: LayerNorm,
    pub intermediate: Linear,
    pub act: Activation,
    pub ffn_output: Linear,
    pub ffn_dropout: Dropout,
    pub output_norm: LayerNorm,
    pub heads: usize,
    span: Span,
}

/// What a layer's backward reads: its inputs and the intermediate results.
pub(crate) struct EncoderLayerCache {
    first_token_only: bool,
    queries: Tensor, // (B, Q, C)
    x: Tensor,       // (B, T, C)
    q: Tensor,       // (B, Q, C)
    k: Tensor,       // (B, T, C)
    v: Tensor,       // (B, T, C)
    probs: Tensor,   // (B, heads, Q, T) softmax output
    probs_drop: DropMask,
    dropped: Tensor, // (B, heads, Q, T) after attention dropout
    ctx: Tensor,     // (B, Q, C) attention context, heads side by side
    out_drop: DropMask,
    attention_sum: Tensor, // (B, Q, C) residual sum before LN1
    a: Tensor,             // (B, Q, C) LN1 output
    act_grad: Tensor,      // (B, Q, F) GELU's derivative at its input, kept instead of the input
    act: Tensor,           // (B, Q, F) GELU output
    ffn_drop: DropMask,
    output_sum: Tensor, // (B, Q, C) residual sum before LN2
}

impl EncoderLayer {
    pub fn load(w: &Weights, names: &EncoderLayerNames, c: &EncoderLayerConfig) -> Result<Self> {
        let (h, f) = (c.hidden, c.intermediate);
        if c.heads == 0 || !h.is_multiple_of(c.heads) {
            candle_core::bail!(
                "hidden size {h} is not a multiple of the number of attention heads {}",
                c.heads
            )
        }
        let dropout = |p: f64| Dropout::new(p, w.dropout_rng());
        Ok(Self {
            query: Linear::load(&w.pp(names.query), h, h)?,
            key: Linear::load(&w.pp(names.key), h, h)?,
            value: Linear::load(&w.pp(names.value), h, h)?,
            attn_dropout: dropout(c.attention_dropout),
            output: Linear::load(&w.pp(names.output), h, h)?,
            output_dropout: c.dropout_after_attention.then(|| dropout(c.hidden_dropout)),
            attention_norm: LayerNorm::load(&w.pp(names.attention_norm), h, c.layer_norm_eps)?,
            intermediate: Linear::load(&w.pp(names.intermediate), h, f)?,
            act: c.act,
            ffn_output: Linear::load(&w.pp(names.ffn_output), f, h)?,
            ffn_dropout: dropout(c.hidden_dropout),
            output_norm: LayerNorm::load(&w.pp(names.output_norm), h, c.layer_norm_eps)?,
            heads: c.heads,
            span: span!(Level::TRACE, "encoder.layer"),
        })
    }

    /// 1 / sqrt(head size): the attention scores' scale.
    fn scale(&self, q: &Tensor) -> Result<f64> {
        let d = q.dim(D::Minus1)? / self.heads;
        Ok(1.0 / (d as f64).sqrt())
    }

    /// x (B, T, C) -> y (B, Q, C). With `first_token_only` only position 0 is computed (its
    /// query against every key), all a [CLS] head reads: Q = 1. Dropout is on when `train`;
    /// the masks are drawn in the order attention, attention output, feed-forward, as
    /// `forward_cached` draws them.
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        train: bool,
        first_token_only: bool,
    ) -> Result<Tensor> {
        let _g = self.span.enter();
        // In a block: q, k, v, the scores and the context are freed before the feed-forward
        // allocates its (B, Q, F) activations (held to the end, they were +45 MiB of peak
        // memory for MiniLM at 64 x 48).
        let a = {
            let queries = query_positions(x, first_token_only)?; // (B, Q, C)
            let q = self.query.forward(&queries)?;
            let k = self.key.forward(x)?;
            let v = self.value.forward(x)?;
            let scores = attention_scores(&q, &k, self.heads, self.scale(&q)?)?; // (B, heads, Q, T)
            let probs = self
                .attn_dropout
                .forward_t(&masked_softmax(&scores, bias)?, train)?;
            let ctx = attention_context(&probs, &v)?; // (B, Q, C)
            let mut out = self.output.forward(&ctx)?;
            if let Some(d) = &self.output_dropout {
                out = d.forward_t(&out, train)?;
            }
            self.attention_norm.forward(&(out + &queries)?)?
        };
        let h = self.act.apply(&self.intermediate.forward(&a)?)?; // (B, Q, F)
        let out = self
            .ffn_dropout
            .forward_t(&self.ffn_output.forward(&h)?, train)?;
        self.output_norm.forward(&(out + a)?)
    }

    /// Whether the written-out backward covers this layer (the erf GELU; others use autograd).
    pub(crate) fn supported(&self) -> bool {
        self.act == Activation::Gelu
    }

    /// `forward` in training mode (dropout on) without a graph, keeping what `backward` reads.
    pub(crate) fn forward_cached(
        &self,
        x: &Tensor,
        bias: &Tensor,
        first_token_only: bool,
    ) -> Result<(Tensor, EncoderLayerCache)> {
        if !self.supported() {
            candle_core::bail!("the written-out backward supports hidden_act \"gelu\" only")
        }
        let _g = self.span.enter();
        let queries = query_positions(x, first_token_only)?;
        let q = self.query.forward_nograd(&queries)?;
        let k = self.key.forward_nograd(x)?;
        let v = self.value.forward_nograd(x)?;
        let scores = attention_scores(&q, &k, self.heads, self.scale(&q)?)?;
        let probs = masked_softmax(&scores, bias)?;
        let (dropped, probs_drop) = self.attn_dropout.forward_nograd(&probs, true)?;
        let ctx = attention_context(&dropped, &v)?;
        let out = self.output.forward_nograd(&ctx)?;
        let (out, out_drop) = match &self.output_dropout {
            Some(d) => d.forward_nograd(&out, true)?,
            None => (out, DropMask(None)),
        };
        let attention_sum = (out + &queries)?;
        let a = self.attention_norm.forward_nograd(&attention_sum)?;
        let pre_act = self.intermediate.forward_nograd(&a)?;
        let (act, act_grad) = gelu_erf_with_grad(&pre_act)?;
        let out = self.ffn_output.forward_nograd(&act)?;
        let (out, ffn_drop) = self.ffn_dropout.forward_nograd(&out, true)?;
        let output_sum = (out + &a)?;
        let y = self.output_norm.forward_nograd(&output_sum)?;
        let cache = EncoderLayerCache {
            first_token_only,
            queries,
            x: x.clone(),
            q,
            k,
            v,
            probs,
            probs_drop,
            dropped,
            ctx,
            out_drop,
            attention_sum,
            a,
            act_grad,
            act,
            ffn_drop,
            output_sum,
        };
        Ok((y, cache))
    }

    /// dy (B, Q, C) -> dx (B, T, C); the weights' gradients go to `g`.
    pub(crate) fn backward(
        &self,
        c: EncoderLayerCache,
        dy: &Tensor,
        g: &mut ParamGrads,
    ) -> Result<Tensor> {
        let _g = self.span.enter();
        // Feed-forward block, last op first.
        let doutput_sum = self.output_norm.backward(&c.output_sum, dy, g)?;
        let dout = c.ffn_drop.backward(doutput_sum.clone())?;
        let dact = self.ffn_output.backward(&c.act, &dout, g)?;
        let dpre = (dact * &c.act_grad)?;
        let da = (self.intermediate.backward(&c.a, &dpre, g)? + doutput_sum)?;
        // Attention block.
        let dattention_sum = self.attention_norm.backward(&c.attention_sum, &da, g)?;
        let dout = c.out_drop.backward(dattention_sum.clone())?;
        let dctx = self.output.backward(&c.ctx, &dout, g)?;
        let (ddropped, dv) = attention_context_backward(&c.dropped, &c.v, &dctx)?;
        let dprobs = c.probs_drop.backward(ddropped)?;
        let dscores = softmax_backward(&c.probs, &dprobs)?;
        let (dq, dk) = attention_scores_backward(&c.q, &c.k, self.scale(&c.q)?, &dscores)?;
        let dqueries = (self.query.backward(&c.queries, &dq, g)? + dattention_sum)?;
        let dx = (self.key.backward(&c.x, &dk, g)? + self.value.backward(&c.x, &dv, g)?)?;
        if !c.first_token_only {
            return dx + dqueries;
        }
        // The queries were position 0 alone: their gradient joins x's there.
        let s = dx.dim(1)?;
        let first = (dx.narrow(1, 0, 1)? + dqueries)?;
        if s == 1 {
            return Ok(first);
        }
        Tensor::cat(&[&first, &dx.narrow(1, 1, s - 1)?], 1)
    }
}

/// Token embeddings: word + position (+ token type), then LayerNorm and dropout. Mirrors
/// `BertEmbeddings` (with token types) and DistilBERT's `Embeddings` (without).
pub struct TokenEmbeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Option<Embedding>,
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
    span: Span,
}

/// The sizes of the embeddings, read off each architecture's config.
#[derive(Clone, Copy, Debug)]
pub struct EmbeddingsConfig {
    pub vocab: usize,
    pub max_positions: usize,
    /// `None`: no token types (DistilBERT).
    pub token_types: Option<usize>,
    pub hidden: usize,
    pub layer_norm_eps: f64,
    pub dropout: f64,
}

/// What the embeddings' backward reads: the ids and the sum before the layer norm.
pub(crate) struct EmbeddingsCache {
    ids: Tensor,                    // (B, T)
    token_type_ids: Option<Tensor>, // (B, T)
    summed: Tensor,                 // (B, T, C)
    drop: DropMask,
}

impl TokenEmbeddings {
    /// `w` points at the embeddings (`embeddings.`): `word_embeddings`, `position_embeddings`,
    /// `token_type_embeddings`, `LayerNorm`.
    pub fn load(w: &Weights, c: &EmbeddingsConfig) -> Result<Self> {
        let token_type_embeddings = match c.token_types {
            Some(n) => Some(Embedding::load(
                &w.pp("token_type_embeddings"),
                n,
                c.hidden,
            )?),
            None => None,
        };
        Ok(Self {
            word_embeddings: Embedding::load(&w.pp("word_embeddings"), c.vocab, c.hidden)?,
            position_embeddings: Embedding::load(
                &w.pp("position_embeddings"),
                c.max_positions,
                c.hidden,
            )?,
            token_type_embeddings,
            layer_norm: LayerNorm::load(&w.pp("LayerNorm"), c.hidden, c.layer_norm_eps)?,
            dropout: Dropout::new(c.dropout, w.dropout_rng()),
            span: span!(Level::TRACE, "embeddings"),
        })
    }

    /// Token type ids default to 0 (one segment), as transformers does.
    fn token_types(&self, x: &ModelInput) -> Result<Option<Tensor>> {
        if self.token_type_embeddings.is_none() {
            return Ok(None);
        }
        Ok(Some(match &x.token_type_ids {
            Some(t) => t.clone(),
            None => x.input_ids.zeros_like()?,
        }))
    }

    /// ids (B, T) -> (B, T, C).
    pub fn forward(&self, x: &ModelInput, train: bool) -> Result<Tensor> {
        let _g = self.span.enter();
        let ids = &x.input_ids;
        let pos = self.position_embeddings.positions(ids)?;
        let mut h = self
            .word_embeddings
            .forward(ids)?
            .broadcast_add(&self.position_embeddings.forward(&pos)?)?;
        if let (Some(e), Some(tt)) = (&self.token_type_embeddings, self.token_types(x)?) {
            h = h.add(&e.forward(&tt)?)?;
        }
        self.dropout.forward_t(&self.layer_norm.forward(&h)?, train)
    }

    /// `forward` in training mode without a graph, keeping what `backward` reads.
    pub(crate) fn forward_cached(&self, x: &ModelInput) -> Result<(Tensor, EmbeddingsCache)> {
        let _g = self.span.enter();
        let ids = &x.input_ids;
        let token_type_ids = self.token_types(x)?;
        let pos = self.position_embeddings.positions(ids)?;
        let mut summed = self
            .word_embeddings
            .forward_nograd(ids)?
            .broadcast_add(&self.position_embeddings.forward_nograd(&pos)?)?;
        if let (Some(e), Some(tt)) = (&self.token_type_embeddings, &token_type_ids) {
            summed = summed.add(&e.forward_nograd(tt)?)?;
        }
        let h = self.layer_norm.forward_nograd(&summed)?;
        let (h, drop) = self.dropout.forward_nograd(&h, true)?;
        let cache = EmbeddingsCache {
            ids: ids.clone(),
            token_type_ids,
            summed,
            drop,
        };
        Ok((h, cache))
    }

    /// dh (B, T, C) -> the tables' gradients, into `g`.
    pub(crate) fn backward(
        &self,
        c: EmbeddingsCache,
        dh: Tensor,
        g: &mut ParamGrads,
    ) -> Result<()> {
        let _g = self.span.enter();
        let dh = c.drop.backward(dh)?;
        let dsummed = self.layer_norm.backward(&c.summed, &dh, g)?;
        self.word_embeddings.backward(&c.ids, &dsummed, g)?;
        if let (Some(e), Some(tt)) = (&self.token_type_embeddings, &c.token_type_ids) {
            e.backward(tt, &dsummed, g)?;
        }
        self.position_embeddings.backward_positions(&dsummed, g)
    }
}

/// The encoder: embeddings, then the stack of layers. `BertModel` without its pooler (its
/// `BertEncoder` holds the layers), and `DistilBertModel` (`Transformer` holds them).
pub struct TransformerEncoder {
    pub embeddings: TokenEmbeddings,
    pub layers: Vec<EncoderLayer>,
    span: Span,
}

/// What the encoder's backward reads.
pub(crate) struct EncoderCache {
    embeddings: EmbeddingsCache,
    layers: Vec<EncoderLayerCache>,
    seq: usize,
}

impl TransformerEncoder {
    /// `w` points at the model's root; the embeddings are read under `embeddings`, layer i
    /// under `{layer_prefix}.{i}` (`encoder.layer`, `transformer.layer`).
    pub fn load(
        w: &Weights,
        embeddings: &EmbeddingsConfig,
        layer_prefix: &str,
        num_layers: usize,
        names: &EncoderLayerNames,
        c: &EncoderLayerConfig,
    ) -> Result<Self> {
        let layers = (0..num_layers)
            .map(|i| EncoderLayer::load(&w.pp(format!("{layer_prefix}.{i}")), names, c))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: TokenEmbeddings::load(&w.pp("embeddings"), embeddings)?,
            layers,
            span: span!(Level::TRACE, "encoder"),
        })
    }

    /// The last hidden state (B, T, C), or (B, 1, C) with `first_token_only`: the last layer
    /// then runs for position 0 alone (~1/7 of a 6-layer encoder's matmul work saved under a
    /// [CLS] head).
    pub fn forward(&self, x: &ModelInput, train: bool, first_token_only: bool) -> Result<Tensor> {
        let _g = self.span.enter();
        let bias = attention_bias(&x.attention_mask, self.dtype())?; // (B, 1, 1, T)
        let mut h = self.embeddings.forward(x, train)?; // (B, T, C)
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h, &bias, train, first_token_only && i == last)?;
        }
        Ok(h)
    }

    fn dtype(&self) -> candle_core::DType {
        self.embeddings.word_embeddings.weight.dtype()
    }

    /// Whether the written-out backward can run: the fused CPU kernels (f32/f64 on the CPU)
    /// and a supported activation in every layer.
    pub(crate) fn has_written_out_backward(&self) -> bool {
        super::kernels::fused_cpu(&self.embeddings.word_embeddings.weight)
            && self.layers.iter().all(EncoderLayer::supported)
    }

    /// Training forward without a graph, the last layer on the first token only:
    /// ids (B, T) -> the first token's last hidden state (B, C), with the caches.
    pub(crate) fn forward_cached(&self, x: &ModelInput) -> Result<(Tensor, EncoderCache)> {
        let _g = self.span.enter();
        let bias = attention_bias(&x.attention_mask, self.dtype())?;
        let (mut h, embeddings) = self.embeddings.forward_cached(x)?;
        let last = self.layers.len().saturating_sub(1);
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let (y, c) = layer.forward_cached(&h, &bias, i == last)?;
            layers.push(c);
            h = y;
        }
        let first = h.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
        let cache = EncoderCache {
            embeddings,
            layers,
            seq: x.input_ids.dim(1)?,
        };
        Ok((first, cache))
    }

    /// dfirst (B, C) -> every parameter's gradient, into `g`.
    pub(crate) fn backward(
        &self,
        c: EncoderCache,
        dfirst: &Tensor,
        g: &mut ParamGrads,
    ) -> Result<()> {
        let _g = self.span.enter();
        let mut dh = dfirst.unsqueeze(1)?; // (B, 1, C)
        for (layer, lc) in self.layers.iter().zip(c.layers).rev() {
            dh = layer.backward(lc, &dh, g)?;
        }
        if self.layers.is_empty() && c.seq > 1 {
            // No layer narrowed the sequence: the gradient reaches position 0 only.
            let (b, _, h) = dh.dims3()?;
            let rest = Tensor::zeros((b, c.seq - 1, h), dh.dtype(), dh.device())?;
            dh = Tensor::cat(&[&dh, &rest], 1)?;
        }
        self.embeddings.backward(c.embeddings, dh, g)
    }
}
