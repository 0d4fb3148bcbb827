//! The written-out backward pass of a sequence classifier on the CPU, for fine-tuning without
//! candle's autograd (why: see [`crate::nn::encoder`]). The encoder (embeddings and layers) is
//! shared; each architecture lends only its head, a cached forward beside its backward, through
//! [`WrittenOutBackward`]. `tests/gradients.rs` checks the loss and every gradient against
//! autograd's.

use candle_core::{Result, Tensor};

use crate::nn::{cross_entropy, cross_entropy_backward, ParamGrads, TransformerEncoder};
use crate::tokenize::ModelInput;

/// A classifier's head around its shared encoder, in training mode without a graph.
pub(crate) trait WrittenOutBackward {
    type HeadCache;

    fn encoder(&self) -> &TransformerEncoder;
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
    m.encoder().has_written_out_backward()
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
    let (first, encoder) = m.encoder().forward_cached(x)?; // (B, C)
    let (logits, head) = m.head_forward(&first)?; // (B, L)
    let loss = cross_entropy(&logits, labels)?;

    // Backward: the same steps in reverse.
    let mut g = ParamGrads::default();
    let dlogits = cross_entropy_backward(&logits, labels, scale)?;
    let dfirst = m.head_backward(head, &dlogits, &mut g)?;
    m.encoder().backward(encoder, &dfirst, &mut g)?;
    Ok((loss, g))
}
