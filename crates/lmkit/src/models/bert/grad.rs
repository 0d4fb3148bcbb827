//! BERT's backward pass written out, for fine-tuning a classifier on the CPU.
//!
//! The same kernels candle's autograd calls (`nn::matmul`, `nn::ops`), run in reverse order by
//! hand. Autograd starts every gradient as a zero tensor and adds the incoming one into it: two
//! extra passes over every activation and weight, plus the allocations (memset and
//! `binary_map` were ~7% of a training step). Here each gradient is written once and added to
//! only where two paths meet: the residual connections and the three projections reading the
//! same input. `tests/gradients.rs` checks every gradient against autograd's.

use candle_core::{Result, Tensor};

use super::{BertAttention, BertEmbeddings, BertForSequenceClassification, BertLayer, BertModel};
use crate::nn::{
    attention_bias, attention_context, attention_scores, cross_entropy, gelu_erf, masked_softmax,
    matmul::{attention_context_backward, attention_scores_backward},
    ops::{gelu_erf_backward, softmax_backward},
    query_positions, Activation, DropMask, ParamGrads,
};

/// What [`BertEmbeddings`]' backward reads: the ids and the sum before the layer norm.
struct EmbeddingsCache {
    ids: Tensor,
    token_type_ids: Tensor,
    summed: Tensor,
    drop: DropMask,
}

impl BertEmbeddings {
    fn forward_cached(&self, ids: &Tensor, tt: &Tensor) -> Result<(Tensor, EmbeddingsCache)> {
        let (_b, s) = ids.dims2()?;
        let max = self.position_embeddings.weight.dim(0)?;
        if s > max {
            candle_core::bail!("sequence of {s} tokens is longer than the model's {max} positions; truncate the input")
        }
        let pos = Tensor::arange(0u32, s as u32, ids.device())?.unsqueeze(0)?;
        let summed = self
            .word_embeddings
            .forward_nograd(ids)?
            .broadcast_add(&self.position_embeddings.forward_nograd(&pos)?)?
            .add(&self.token_type_embeddings.forward_nograd(tt)?)?;
        let x = self.layer_norm.forward_nograd(&summed)?;
        let (x, drop) = self.dropout.forward_nograd(&x, true)?;
        let cache = EmbeddingsCache {
            ids: ids.clone(),
            token_type_ids: tt.clone(),
            summed,
            drop,
        };
        Ok((x, cache))
    }

    fn backward(&self, c: EmbeddingsCache, dy: Tensor, g: &mut ParamGrads) -> Result<()> {
        let dy = c.drop.backward(dy)?;
        let d = self.layer_norm.backward(&c.summed, &dy, g)?;
        self.word_embeddings.backward(&c.ids, &d, g)?;
        self.token_type_embeddings
            .backward(&c.token_type_ids, &d, g)?;
        // Position p's row is used once per sequence: its gradient is the sum over the batch.
        let s = d.dim(1)?;
        let pos = Tensor::arange(0u32, s as u32, d.device())?;
        self.position_embeddings.backward(&pos, &d.sum(0)?, g)
    }
}

/// What [`BertAttention`]'s backward reads.
struct AttentionCache {
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
    summed: Tensor,
}

impl BertAttention {
    fn scale(&self, q: &Tensor) -> Result<f64> {
        let d = q.dim(candle_core::D::Minus1)? / self.heads;
        Ok(1.0 / (d as f64).sqrt())
    }

    fn forward_cached(
        &self,
        queries: &Tensor,
        x: &Tensor,
        bias: &Tensor,
    ) -> Result<(Tensor, AttentionCache)> {
        let _g = self.span.enter();
        let q = self.query.forward_nograd(queries)?;
        let k = self.key.forward_nograd(x)?;
        let v = self.value.forward_nograd(x)?;
        let scores = attention_scores(&q, &k, self.heads, self.scale(&q)?)?;
        let probs = masked_softmax(&scores, bias)?;
        let (dropped, probs_drop) = self.attn_dropout.forward_nograd(&probs, true)?;
        let ctx = attention_context(&dropped, &v)?;
        let out = self.output.forward_nograd(&ctx)?;
        let (out, out_drop) = self.out_dropout.forward_nograd(&out, true)?;
        let summed = (out + queries)?;
        let y = self.layer_norm.forward_nograd(&summed)?;
        let cache = AttentionCache {
            queries: queries.clone(),
            x: x.clone(),
            q,
            k,
            v,
            probs,
            probs_drop,
            dropped,
            ctx,
            out_drop,
            summed,
        };
        Ok((y, cache))
    }

    /// (d queries, d x): the gradients of the two inputs, through every path but the caller's.
    fn backward(
        &self,
        c: AttentionCache,
        dy: &Tensor,
        g: &mut ParamGrads,
    ) -> Result<(Tensor, Tensor)> {
        let _g = self.span.enter();
        let dsummed = self.layer_norm.backward(&c.summed, dy, g)?;
        let dout = c.out_drop.backward(dsummed.clone())?;
        let dctx = self.output.backward(&c.ctx, &dout, g)?;
        let (ddropped, dv) = attention_context_backward(&c.dropped, &c.v, &dctx)?;
        let dprobs = c.probs_drop.backward(ddropped)?;
        let dscores = softmax_backward(&c.probs, &dprobs)?;
        let (dq, dk) = attention_scores_backward(&c.q, &c.k, self.scale(&c.q)?, &dscores)?;
        let dqueries = (self.query.backward(&c.queries, &dq, g)? + dsummed)?;
        let dx = (self.key.backward(&c.x, &dk, g)? + self.value.backward(&c.x, &dv, g)?)?;
        Ok((dqueries, dx))
    }
}

/// What [`BertLayer`]'s backward reads.
struct LayerCache {
    attention: AttentionCache,
    first_token_only: bool,
    a: Tensor,
    pre_act: Tensor,
    act: Tensor,
    drop: DropMask,
    summed: Tensor,
}

impl BertLayer {
    fn forward_cached(
        &self,
        x: &Tensor,
        bias: &Tensor,
        first_token_only: bool,
    ) -> Result<(Tensor, LayerCache)> {
        let _g = self.span.enter();
        let queries = query_positions(x, first_token_only)?;
        let (a, attention) = self.attention.forward_cached(&queries, x, bias)?;
        let pre_act = self.intermediate.forward_nograd(&a)?;
        let act = gelu_erf(&pre_act)?;
        let out = self.output.forward_nograd(&act)?;
        let (out, drop) = self.dropout.forward_nograd(&out, true)?;
        let summed = (out + &a)?;
        let y = self.layer_norm.forward_nograd(&summed)?;
        let cache = LayerCache {
            attention,
            first_token_only,
            a,
            pre_act,
            act,
            drop,
            summed,
        };
        Ok((y, cache))
    }

    /// The gradient of the layer's input x (batch, seq, hidden).
    fn backward(&self, c: LayerCache, dy: &Tensor, g: &mut ParamGrads) -> Result<Tensor> {
        let _g = self.span.enter();
        let dsummed = self.layer_norm.backward(&c.summed, dy, g)?;
        let dout = c.drop.backward(dsummed.clone())?;
        let dact = self.output.backward(&c.act, &dout, g)?;
        let dpre = gelu_erf_backward(&c.pre_act, &dact)?;
        let da = (self.intermediate.backward(&c.a, &dpre, g)? + dsummed)?;
        let (dqueries, dx) = self.attention.backward(c.attention, &da, g)?;
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

impl BertModel {
    /// Whether [`BertForSequenceClassification::loss_and_grads`] can run this model: fused CPU
    /// kernels (f32/f64 on the CPU) and the erf GELU that every BERT checkpoint here uses.
    pub(crate) fn has_written_out_backward(&self) -> bool {
        crate::nn::fused_cpu(&self.embeddings.word_embeddings.weight)
            && self.layers.iter().all(|l| l.act == Activation::Gelu)
    }
}

impl BertForSequenceClassification {
    /// Training mode's cross-entropy loss, and `scale` times its gradient for every parameter
    /// (scale = 1 / accumulation steps), computed by the written-out backward pass: the same
    /// values as `cross_entropy(self.forward(.., true), labels).backward()` (the same dropout
    /// masks too), without autograd's zero-filled accumulators. CPU, f32/f64, GELU (erf) only:
    /// see [`BertModel::has_written_out_backward`].
    pub fn loss_and_grads(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        labels: &Tensor,
        scale: f64,
    ) -> Result<(Tensor, ParamGrads)> {
        if !self.bert.has_written_out_backward() {
            candle_core::bail!("the written-out backward needs f32/f64 weights on the CPU and hidden_act \"gelu\"; use autograd (cross_entropy(forward(..)).backward())")
        }
        let bert = &self.bert;
        let pooler = bert
            .pooler
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("model was loaded without a pooler".into()))?;
        // Forward, as BertForSequenceClassification::forward, keeping what backward reads.
        let dtype = bert.embeddings.word_embeddings.weight.dtype();
        let tt = match token_type_ids {
            Some(t) => t.clone(),
            None => input_ids.zeros_like()?,
        };
        let bias = attention_bias(attention_mask, dtype)?;
        let (mut x, emb) = bert.embeddings.forward_cached(input_ids, &tt)?;
        let last = bert.layers.len().saturating_sub(1);
        let mut caches = Vec::with_capacity(bert.layers.len());
        for (i, layer) in bert.layers.iter().enumerate() {
            let (y, c) = layer.forward_cached(&x, &bias, i == last)?;
            caches.push(c);
            x = y;
        }
        let first = x.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
        let pooled = pooler.forward_nograd(&first)?.tanh()?;
        let (dropped, drop) = self.dropout.forward_nograd(&pooled, true)?;
        let logits = self.classifier.forward_nograd(&dropped)?;
        let loss = cross_entropy(&logits, labels)?;

        // Backward.
        let mut g = ParamGrads::default();
        let dlogits = cross_entropy_backward(&logits, labels, scale)?;
        let ddropped = self.classifier.backward(&dropped, &dlogits, &mut g)?;
        let dpooled = drop.backward(ddropped)?;
        let dpre = (dpooled * (pooled.sqr()?.affine(-1.0, 1.0))?)?; // tanh' = 1 - tanh^2
        let dfirst = pooler.backward(&first, &dpre, &mut g)?;
        let mut dx = dfirst.unsqueeze(1)?;
        if !bert.layers.is_empty() && !caches[last].first_token_only {
            candle_core::bail!("internal: the last layer must run on the first token only")
        }
        for (layer, c) in bert.layers.iter().zip(caches).rev() {
            dx = layer.backward(c, &dx, &mut g)?;
        }
        if bert.layers.is_empty() {
            // No layer narrowed the sequence: the gradient reaches position 0 only.
            let (b, s, h) = x.dims3()?;
            let rest = Tensor::zeros((b, s - 1, h), dx.dtype(), dx.device())?;
            dx = Tensor::cat(&[&dx, &rest], 1)?;
        }
        bert.embeddings.backward(emb, dx, &mut g)?;
        Ok((loss, g))
    }
}

/// scale * d mean(cross-entropy) / d logits = scale * (softmax(logits) - onehot(labels)) / batch.
fn cross_entropy_backward(logits: &Tensor, labels: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, c) = logits.dims2()?;
    let probs = crate::nn::softmax_last_dim(logits)?;
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
