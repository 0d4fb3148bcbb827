//! The written-out backward pass of a sequence classifier on the CPU, for fine-tuning without
//! candle's autograd (why: see [`crate::nn::encoder`]). The encoder layers are shared; each
//! architecture lends its embeddings and its head, each with a cached forward beside its
//! backward, through [`WrittenOutBackward`]. `tests/gradients.rs` checks the loss and every
//! gradient against autograd's.

use candle_core::{Result, Tensor};

use crate::nn::TransformerEncoder;
use crate::nn::{attention_bias, cross_entropy, cross_entropy_backward, ParamGrads};
use crate::tokenize::ModelInput;

/// The parts of a classifier around its shared encoder, in training mode without a graph.
pub(crate) trait WrittenOutBackward {
    type EmbeddingsCache;
    type HeadCache;

    fn encoder(&self) -> &TransformerEncoder;
    /// The word embeddings' weight: its device and dtype decide whether the fused kernels run.
    fn word_embeddings(&self) -> &Tensor;
    /// ids (B, T) -> hidden (B, T, C), dropout on.
    fn embeddings_forward(&self, x: &ModelInput) -> Result<(Tensor, Self::EmbeddingsCache)>;
    /// dhidden (B, T, C) -> the embedding tables' gradients, into `g`.
    fn embeddings_backward(
        &self,
        c: Self::EmbeddingsCache,
        dx: Tensor,
        g: &mut ParamGrads,
    ) -> Result<()>;
    /// The first token's last hidden state (B, C) -> logits (B, L), dropout on.
    fn head_forward(&self, first: &Tensor) -> Result<(Tensor, Self::HeadCache)>;
    /// dlogits (B, L) -> dfirst (B, C); the head's gradients into `g`.
    fn head_backward(
        &self,
        c: Self::HeadCache,
        dlogits: &Tensor,
        g: &mut ParamGrads,
    ) -> Result<Tensor>;
}

/// Whether [`loss_and_grads`] can run this model: fused CPU kernels (f32/f64 on the CPU) and
/// the erf GELU in every layer.
pub(crate) fn supported<M: WrittenOutBackward>(m: &M) -> bool {
    m.encoder().has_written_out_backward(m.word_embeddings())
}

/// Training mode's cross-entropy loss, and `scale` times its gradient for every parameter
/// (scale = 1 / accumulation steps): the values of
/// `cross_entropy(model.forward(x, true), labels).backward()` with the same dropout masks.
pub(crate) fn loss_and_grads<M: WrittenOutBackward>(
    m: &M,
    x: &ModelInput,
    labels: &Tensor,
    scale: f64,
) -> Result<(Tensor, ParamGrads)> {
    if !supported(m) {
        candle_core::bail!(
            "the written-out backward needs f32/f64 weights on the CPU and the \"gelu\" \
             activation; use autograd (cross_entropy(forward(..)).backward())"
        )
    }
    // Forward, as the model's `forward`, keeping what the backward reads.
    let bias = attention_bias(&x.attention_mask, m.word_embeddings().dtype())?; // (B, 1, 1, T)
    let (h, emb) = m.embeddings_forward(x)?; // (B, T, C)
    let (hidden, layers) = m.encoder().forward_cached(h, &bias)?; // (B, 1, C)
    let first = hidden.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?; // (B, C)
    let (logits, head) = m.head_forward(&first)?; // (B, L)
    let loss = cross_entropy(&logits, labels)?;

    // Backward: the same steps in reverse.
    let mut g = ParamGrads::default();
    let dlogits = cross_entropy_backward(&logits, labels, scale)?;
    let dfirst = m.head_backward(head, &dlogits, &mut g)?.unsqueeze(1)?; // (B, 1, C)
    let seq = x.input_ids.dim(1)?;
    let dh = m.encoder().backward(layers, dfirst, seq, &mut g)?; // (B, T, C)
    m.embeddings_backward(emb, dh, &mut g)?;
    Ok((loss, g))
}
