//! What attention needs besides the layer: the padding-mask bias, and the query positions.

use candle_core::{DType, Result, Tensor};

/// The positions of x (batch, seq, hidden) a layer computes outputs for: all of them, or only
/// the first when nothing but that token's output is read (a [CLS] classification head).
pub fn query_positions(x: &Tensor, first_token_only: bool) -> Result<Tensor> {
    if first_token_only {
        x.narrow(1, 0, 1)?.contiguous()
    } else {
        Ok(x.clone())
    }
}

/// Attention bias from a 0/1 padding mask (batch, seq): 0 where attended, the dtype's most
/// negative value where padded (as transformers' `get_extended_attention_mask`), shaped
/// (batch, 1, 1, seq) to broadcast over heads and query positions.
pub fn attention_bias(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, s) = mask.dims2()?;
    let min = match dtype {
        DType::F64 => f64::MIN,
        DType::F16 => -65504.0,
        _ => f32::MIN as f64,
    };
    let m = mask.to_dtype(dtype)?;
    ((m.ones_like()? - m)? * min)?.reshape((b, 1, 1, s))
}
