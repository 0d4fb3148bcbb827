//! The training loss, forward and backward.

use candle_core::{DType, Result, Tensor, D};

/// Cross-entropy of logits (batch, classes) against integer labels (batch), averaged, as
/// `torch.nn.functional.cross_entropy` / Keras' sparse categorical cross-entropy on logits.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?;
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let log_probs = shifted.broadcast_sub(&lse)?;
    let labels = labels.to_dtype(DType::U32)?.unsqueeze(1)?;
    let picked = log_probs.gather(&labels, 1)?;
    picked.mean_all()?.neg()
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cross_entropy_matches_hand_computation() -> Result<()> {
        let logits = Tensor::new(&[[1.0f64, 2.0, 3.0], [0.0, 0.0, 0.0]], &Device::Cpu)?;
        let labels = Tensor::new(&[2u32, 0], &Device::Cpu)?;
        let got = cross_entropy(&logits, &labels)?.to_scalar::<f64>()?;
        let l0 = -(3f64.exp() / (1f64.exp() + 2f64.exp() + 3f64.exp())).ln();
        let l1 = -(1.0f64 / 3.0).ln();
        assert!((got - (l0 + l1) / 2.0).abs() < 1e-12);
        Ok(())
    }
}
