//! Written-out backward passes, for fine-tuning on the CPU without candle's autograd.
//!
//! The same kernels autograd calls ([`super::matmul`], [`super::ops`]), run in reverse order by
//! hand. Autograd starts every gradient as a zero tensor and adds the incoming one into it: two
//! extra passes over every activation and weight gradient, plus their allocations (memset and
//! candle's `binary_map` were ~7% of a training step). Here each gradient is written once and
//! added to only where two paths meet: a residual connection, or the three projections that
//! read the same input.
//!
//! This file holds what BERT and DistilBERT share, the post-LN encoder layer (transformers'
//! `BertLayer` / `TransformerBlock`); each model's file adds its embeddings and head.
//! `tests/gradients.rs` checks every gradient against autograd's.

use candle_core::{Result, Tensor, D};

use super::matmul::{attention_context_backward, attention_scores_backward};
use super::ops::{gelu_erf_with_grad, softmax_backward};
use super::{
    attention_context, attention_scores, masked_softmax, query_positions, Activation, DropMask,
    Dropout, LayerNorm, Linear, ParamGrads,
};

/// The modules of one post-LN encoder layer, borrowed from a model:
/// `a = LN1(queries + drop(O(attention(Q queries, K x, V x))))`,
/// `y = LN2(a + drop(Out(act(In(a)))))`.
pub(crate) struct EncoderLayerParts<'a> {
    pub query: &'a Linear,
    pub key: &'a Linear,
    pub value: &'a Linear,
    pub attn_dropout: &'a Dropout,
    pub output: &'a Linear,
    /// BERT drops the attention's projected output; DistilBERT does not.
    pub output_dropout: Option<&'a Dropout>,
    pub attention_norm: &'a LayerNorm,
    pub intermediate: &'a Linear,
    pub act: Activation,
    pub ffn_output: &'a Linear,
    pub ffn_dropout: &'a Dropout,
    pub output_norm: &'a LayerNorm,
    pub heads: usize,
}

/// What a layer's backward reads: its inputs and the intermediate results.
pub(crate) struct EncoderLayerCache {
    first_token_only: bool,
    queries: Tensor,
    x: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    probs: Tensor,
    probs_drop: DropMask,
    dropped: Tensor,
    ctx: Tensor,
    out_drop: DropMask,
    attention_sum: Tensor,
    a: Tensor,
    /// GELU's derivative at its input, kept instead of the input.
    act_grad: Tensor,
    act: Tensor,
    ffn_drop: DropMask,
    output_sum: Tensor,
}

impl EncoderLayerParts<'_> {
    /// Whether the written-out backward covers this layer (the erf GELU; others use autograd).
    pub fn supported(&self) -> bool {
        self.act == Activation::Gelu
    }

    fn scale(&self, q: &Tensor) -> Result<f64> {
        let d = q.dim(D::Minus1)? / self.heads;
        Ok(1.0 / (d as f64).sqrt())
    }

    /// The layer in training mode (dropout on) without a graph, drawing its dropout masks in
    /// the order the model's `forward` does. With `first_token_only` the output is
    /// (batch, 1, hidden), as in the models' `forward_first_token`.
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        first_token_only: bool,
    ) -> Result<(Tensor, EncoderLayerCache)> {
        if !self.supported() {
            candle_core::bail!("the written-out backward supports hidden_act \"gelu\" only")
        }
        let queries = query_positions(x, first_token_only)?;
        let q = self.query.forward_nograd(&queries)?;
        let k = self.key.forward_nograd(x)?;
        let v = self.value.forward_nograd(x)?;
        let scores = attention_scores(&q, &k, self.heads, self.scale(&q)?)?;
        let probs = masked_softmax(&scores, bias)?;
        let (dropped, probs_drop) = self.attn_dropout.forward_nograd(&probs, true)?;
        let ctx = attention_context(&dropped, &v)?;
        let out = self.output.forward_nograd(&ctx)?;
        let (out, out_drop) = match self.output_dropout {
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

    /// The gradient of the layer's input x (batch, seq, hidden) from that of its output; the
    /// weights' gradients go to `g`.
    pub fn backward(
        &self,
        c: EncoderLayerCache,
        dy: &Tensor,
        g: &mut ParamGrads,
    ) -> Result<Tensor> {
        // Feed-forward block.
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

/// Whether a model can take the written-out backward: the fused CPU kernels (f32/f64 on the
/// CPU, judged by its word embeddings) and a supported activation in every layer.
pub(crate) fn supported(word_embeddings: &Tensor, layers: &[EncoderLayerParts<'_>]) -> bool {
    super::fused_cpu(word_embeddings) && layers.iter().all(EncoderLayerParts::supported)
}

/// Runs `layers` forward in training mode, the last on the first token only (all a
/// classification head reads), keeping each layer's cache.
pub(crate) fn encoder_forward(
    layers: &[EncoderLayerParts<'_>],
    mut x: Tensor,
    bias: &Tensor,
) -> Result<(Tensor, Vec<EncoderLayerCache>)> {
    let last = layers.len().saturating_sub(1);
    let mut caches = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let (y, c) = layer.forward(&x, bias, i == last)?;
        caches.push(c);
        x = y;
    }
    Ok((x, caches))
}

/// The gradient of the encoder's input (batch, seq, hidden) from that of its output's first
/// token (batch, 1, hidden); `seq` is the input's length.
pub(crate) fn encoder_backward(
    layers: &[EncoderLayerParts<'_>],
    caches: Vec<EncoderLayerCache>,
    dfirst: Tensor,
    seq: usize,
    g: &mut ParamGrads,
) -> Result<Tensor> {
    let mut dx = dfirst;
    for (layer, c) in layers.iter().zip(caches).rev() {
        dx = layer.backward(c, &dx, g)?;
    }
    if layers.is_empty() && seq > 1 {
        // No layer narrowed the sequence: the gradient reaches position 0 only.
        let (b, _, h) = dx.dims3()?;
        let rest = Tensor::zeros((b, seq - 1, h), dx.dtype(), dx.device())?;
        dx = Tensor::cat(&[&dx, &rest], 1)?;
    }
    Ok(dx)
}

/// scale * d mean(cross-entropy) / d logits = scale * (softmax(logits) - onehot(labels)) / batch.
pub(crate) fn cross_entropy_backward(
    logits: &Tensor,
    labels: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let (b, c) = logits.dims2()?;
    let probs = super::softmax_last_dim(logits)?;
    let labels = labels.to_dtype(candle_core::DType::U32)?.to_vec1::<u32>()?;
    let mut onehot = vec![0f64; b * c];
    for (i, &l) in labels.iter().enumerate() {
        let l = l as usize;
        if l >= c {
            candle_core::bail!("label {l} is out of range for {c} classes")
        }
        onehot[i * c + l] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (b, c), logits.device())?.to_dtype(logits.dtype())?;
    (probs - onehot)? * (scale / b as f64)
}
