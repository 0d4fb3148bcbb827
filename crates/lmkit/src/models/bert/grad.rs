//! BERT's backward pass written out (see `nn::backward`): the embeddings and the
//! classification head here, the encoder layers shared with DistilBERT.

use candle_core::{Result, Tensor};

use super::{BertEmbeddings, BertForSequenceClassification, BertLayer, BertModel};
use crate::nn::backward::{
    cross_entropy_backward, encoder_backward, encoder_forward, EncoderLayerParts,
};
use crate::nn::{attention_bias, cross_entropy, DropMask, ParamGrads};

/// What [`BertEmbeddings`]' backward reads: the ids and the sum before the layer norm.
struct EmbeddingsCache {
    ids: Tensor,
    token_type_ids: Tensor,
    summed: Tensor,
    drop: DropMask,
}

impl BertEmbeddings {
    fn forward_cached(&self, ids: &Tensor, tt: &Tensor) -> Result<(Tensor, EmbeddingsCache)> {
        let _g = self.span.enter();
        let pos = self.position_embeddings.positions(ids)?;
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
        let _g = self.span.enter();
        let dy = c.drop.backward(dy)?;
        let d = self.layer_norm.backward(&c.summed, &dy, g)?;
        self.word_embeddings.backward(&c.ids, &d, g)?;
        self.token_type_embeddings
            .backward(&c.token_type_ids, &d, g)?;
        self.position_embeddings.backward_positions(&d, g)
    }
}

impl BertLayer {
    fn parts(&self) -> EncoderLayerParts<'_> {
        let a = &self.attention;
        EncoderLayerParts {
            query: &a.query,
            key: &a.key,
            value: &a.value,
            attn_dropout: &a.attn_dropout,
            output: &a.output,
            output_dropout: Some(&a.out_dropout),
            attention_norm: &a.layer_norm,
            intermediate: &self.intermediate,
            act: self.act,
            ffn_output: &self.output,
            ffn_dropout: &self.dropout,
            output_norm: &self.layer_norm,
            heads: a.heads,
        }
    }
}

impl BertModel {
    /// Whether [`BertForSequenceClassification::loss_and_grads`] can run this model: fused CPU
    /// kernels (f32/f64 on the CPU) and the erf GELU that every BERT checkpoint here uses.
    pub(crate) fn has_written_out_backward(&self) -> bool {
        let layers: Vec<_> = self.layers.iter().map(BertLayer::parts).collect();
        crate::nn::backward::supported(&self.embeddings.word_embeddings.weight, &layers)
    }
}

impl BertForSequenceClassification {
    /// Training mode's cross-entropy loss, and `scale` times its gradient for every parameter
    /// (scale = 1 / accumulation steps), by the written-out backward pass: the values of
    /// `cross_entropy(self.forward(.., true), labels).backward()` with the same dropout masks,
    /// without autograd's zero-filled accumulators. CPU, f32/f64, GELU (erf) only: see
    /// [`BertModel::has_written_out_backward`].
    pub fn loss_and_grads(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        labels: &Tensor,
        scale: f64,
    ) -> Result<(Tensor, ParamGrads)> {
        let bert = &self.bert;
        if !bert.has_written_out_backward() {
            candle_core::bail!("the written-out backward needs f32/f64 weights on the CPU and hidden_act \"gelu\"; use autograd (cross_entropy(forward(..)).backward())")
        }
        let pooler = bert
            .pooler
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("model was loaded without a pooler".into()))?;
        // Forward, as `forward`, keeping what the backward reads.
        let _g = bert.span.enter();
        let tt = match token_type_ids {
            Some(t) => t.clone(),
            None => input_ids.zeros_like()?,
        };
        let dtype = bert.embeddings.word_embeddings.weight.dtype();
        let bias = attention_bias(attention_mask, dtype)?;
        let (x, emb) = bert.embeddings.forward_cached(input_ids, &tt)?;
        let layers: Vec<_> = bert.layers.iter().map(BertLayer::parts).collect();
        let (hidden, caches) = encoder_forward(&layers, x, &bias)?;
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
        let pooled = pooler.forward_nograd(&first)?.tanh()?;
        let (dropped, drop) = self.dropout.forward_nograd(&pooled, true)?;
        let logits = self.classifier.forward_nograd(&dropped)?;
        let loss = cross_entropy(&logits, labels)?;

        // Backward.
        let mut g = ParamGrads::default();
        let dlogits = cross_entropy_backward(&logits, labels, scale)?;
        let ddropped = self.classifier.backward(&dropped, &dlogits, &mut g)?;
        let dpooled = drop.backward(ddropped)?;
        let dpre = (dpooled * pooled.sqr()?.affine(-1.0, 1.0)?)?; // tanh' = 1 - tanh^2
        let dfirst = pooler.backward(&first, &dpre, &mut g)?.unsqueeze(1)?;
        let dx = encoder_backward(&layers, caches, dfirst, input_ids.dim(1)?, &mut g)?;
        bert.embeddings.backward(emb, dx, &mut g)?;
        Ok((loss, g))
    }
}
