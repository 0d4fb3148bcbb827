//! DistilBERT's backward pass written out (see `nn::backward`): the embeddings and the
//! classification head here, the encoder layers shared with BERT.

use candle_core::{Result, Tensor};

use super::{DistilBertForSequenceClassification, DistilBertModel, Embeddings, TransformerBlock};
use crate::nn::backward::{
    cross_entropy_backward, encoder_backward, encoder_forward, EncoderLayerParts,
};
use crate::nn::{attention_bias, cross_entropy, DropMask, ParamGrads};

/// What [`Embeddings`]' backward reads: the ids and the sum before the layer norm.
struct EmbeddingsCache {
    ids: Tensor,
    summed: Tensor,
    drop: DropMask,
}

impl Embeddings {
    fn forward_cached(&self, ids: &Tensor) -> Result<(Tensor, EmbeddingsCache)> {
        let _g = self.span.enter();
        let pos = self.position_embeddings.positions(ids)?;
        let summed = self
            .word_embeddings
            .forward_nograd(ids)?
            .broadcast_add(&self.position_embeddings.forward_nograd(&pos)?)?;
        let x = self.layer_norm.forward_nograd(&summed)?;
        let (x, drop) = self.dropout.forward_nograd(&x, true)?;
        let cache = EmbeddingsCache {
            ids: ids.clone(),
            summed,
            drop,
        };
        Ok((x, cache))
    }

    fn backward(&self, c: EmbeddingsCache, dy: Tensor, g: &mut ParamGrads) -> Result<()> {
        let _g = self.span.enter();
        let dy = c.drop.backward(dy)?;
        let d = self.layer_norm.backward(&c.summed, &dy, g)?;
        self.word_embeddings.backward(&c.ids, &d, g)?;
        self.position_embeddings.backward_positions(&d, g)
    }
}

impl TransformerBlock {
    fn parts(&self) -> EncoderLayerParts<'_> {
        let a = &self.attention;
        EncoderLayerParts {
            query: &a.q_lin,
            key: &a.k_lin,
            value: &a.v_lin,
            attn_dropout: &a.dropout,
            output: &a.out_lin,
            output_dropout: None,
            attention_norm: &self.sa_layer_norm,
            intermediate: &self.lin1,
            act: self.act,
            ffn_output: &self.lin2,
            ffn_dropout: &self.ffn_dropout,
            output_norm: &self.output_layer_norm,
            heads: a.heads,
        }
    }
}

impl DistilBertModel {
    /// Whether [`DistilBertForSequenceClassification::loss_and_grads`] can run this model:
    /// fused CPU kernels (f32/f64 on the CPU) and the erf GELU (DistilBERT's `activation`).
    pub(crate) fn has_written_out_backward(&self) -> bool {
        let layers: Vec<_> = self.layers.iter().map(TransformerBlock::parts).collect();
        crate::nn::backward::supported(&self.embeddings.word_embeddings.weight, &layers)
    }
}

impl DistilBertForSequenceClassification {
    /// Training mode's cross-entropy loss, and `scale` times its gradient for every parameter,
    /// by the written-out backward pass (as `BertForSequenceClassification::loss_and_grads`).
    pub fn loss_and_grads(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        labels: &Tensor,
        scale: f64,
    ) -> Result<(Tensor, ParamGrads)> {
        let body = &self.distilbert;
        if !body.has_written_out_backward() {
            candle_core::bail!("the written-out backward needs f32/f64 weights on the CPU and activation \"gelu\"; use autograd (cross_entropy(forward(..)).backward())")
        }
        // Forward, as `forward`, keeping what the backward reads.
        let _g = body.span.enter();
        let dtype = body.embeddings.word_embeddings.weight.dtype();
        let bias = attention_bias(attention_mask, dtype)?;
        let (x, emb) = body.embeddings.forward_cached(input_ids)?;
        let layers: Vec<_> = body.layers.iter().map(TransformerBlock::parts).collect();
        let (hidden, caches) = encoder_forward(&layers, x, &bias)?;
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
        let pre = self.pre_classifier.forward_nograd(&first)?;
        let relu = pre.relu()?;
        let (dropped, drop) = self.dropout.forward_nograd(&relu, true)?;
        let logits = self.classifier.forward_nograd(&dropped)?;
        let loss = cross_entropy(&logits, labels)?;

        // Backward.
        let mut g = ParamGrads::default();
        let dlogits = cross_entropy_backward(&logits, labels, scale)?;
        let ddropped = self.classifier.backward(&dropped, &dlogits, &mut g)?;
        let drelu = drop.backward(ddropped)?;
        // relu' = [pre > 0], as PyTorch (candle takes >= 0; the two differ only at exactly 0).
        let dpre = (drelu * pre.gt(0.0)?.to_dtype(dtype)?)?;
        let dfirst = self
            .pre_classifier
            .backward(&first, &dpre, &mut g)?
            .unsqueeze(1)?;
        let dx = encoder_backward(&layers, caches, dfirst, input_ids.dim(1)?, &mut g)?;
        body.embeddings.backward(emb, dx, &mut g)?;
        Ok((loss, g))
    }
}
