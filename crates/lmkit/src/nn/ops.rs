//! Fused CPU kernels with their own backward pass.
//!
//! candle's fused `layer_norm` and `softmax_last_dim` have no backward, so anything before them
//! silently gets no gradient (candle issues #2168, #2977, #3011). These ops compute the same maths
//! in one pass over memory and define `bwd`, so they are both correct for training and fast.
//! On devices other than the CPU the callers fall back to composed tensor ops, which candle can
//! differentiate.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

/// Rows of the last dimension of a contiguous tensor.
fn rows<'a, T>(s: &'a [T], layout: &Layout) -> Result<(&'a [T], usize)> {
    let (o1, o2) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused op: input must be contiguous".into()))?;
    let n = layout.dims().last().copied().unwrap_or(1);
    Ok((&s[o1..o2], n.max(1)))
}

/// A float type the kernels run on (f32 for models, f64 for gradient checks).
trait Float:
    candle_core::WithDType
    + Copy
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + std::ops::DivAssign
    + PartialOrd
{
    fn exp(self) -> Self;
}
impl Float for f32 {
    fn exp(self) -> Self {
        f32::exp(self)
    }
}
impl Float for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
}

macro_rules! dispatch1 {
    ($storage:expr, $layout:expr, $f:ident $(, $arg:expr)*) => {
        match $storage {
            CpuStorage::F32(s) => $f::<f32>(s, $layout $(, $arg)*),
            CpuStorage::F64(s) => $f::<f64>(s, $layout $(, $arg)*),
            _ => candle_core::bail!("fused op: only f32 and f64 are supported"),
        }
    };
}

macro_rules! dispatch2 {
    ($s1:expr, $l1:expr, $s2:expr, $l2:expr, $f:ident $(, $arg:expr)*) => {
        match ($s1, $s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => $f::<f32>(a, $l1, b, $l2 $(, $arg)*),
            (CpuStorage::F64(a), CpuStorage::F64(b)) => $f::<f64>(a, $l1, b, $l2 $(, $arg)*),
            _ => candle_core::bail!("fused op: inputs must both be f32 or both f64"),
        }
    };
}

// ---------------------------------------------------------------- normalisation (layer norm core)

/// `(x - mean) / sqrt(var + eps)` over the last dimension (biased variance, as PyTorch).
struct Normalize {
    eps: f64,
}

fn normalize_fwd<T: Float>(s: &[T], l: &Layout, eps: f64) -> Result<(CpuStorage, Shape)> {
    let (x, n) = rows(s, l)?;
    let mut out = vec![T::from_f64(0.0); x.len()];
    out.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .for_each(|(o, r)| {
            let inv_n = 1.0 / n as f64;
            let mean = r.iter().map(|v| v.to_f64()).sum::<f64>() * inv_n;
            let var = r.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() * inv_n;
            let rstd = 1.0 / (var + eps).sqrt();
            for (o, v) in o.iter_mut().zip(r) {
                *o = T::from_f64((v.to_f64() - mean) * rstd);
            }
        });
    Ok((T::to_cpu_storage_owned(out), l.shape().clone()))
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "lmkit-normalize"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch1!(s, l, normalize_fwd, self.eps)
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(arg.apply_op2_no_bwd(
            &grad,
            &NormalizeBwd { eps: self.eps },
        )?))
    }
}

/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), recomputing mean and rstd from x.
struct NormalizeBwd {
    eps: f64,
}

fn normalize_bwd<T: Float>(
    xs: &[T],
    lx: &Layout,
    gs: &[T],
    lg: &Layout,
    eps: f64,
) -> Result<(CpuStorage, Shape)> {
    let (x, n) = rows(xs, lx)?;
    let (g, _) = rows(gs, lg)?;
    let mut out = vec![T::from_f64(0.0); x.len()];
    out.par_chunks_mut(n)
        .zip(x.par_chunks(n).zip(g.par_chunks(n)))
        .for_each(|(o, (r, g))| {
            let inv_n = 1.0 / n as f64;
            let mean = r.iter().map(|v| v.to_f64()).sum::<f64>() * inv_n;
            let var = r.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() * inv_n;
            let rstd = 1.0 / (var + eps).sqrt();
            let mut g_mean = 0.0;
            let mut gx_mean = 0.0;
            for (v, gv) in r.iter().zip(g) {
                let xhat = (v.to_f64() - mean) * rstd;
                g_mean += gv.to_f64();
                gx_mean += gv.to_f64() * xhat;
            }
            g_mean *= inv_n;
            gx_mean *= inv_n;
            for ((o, v), gv) in o.iter_mut().zip(r).zip(g) {
                let xhat = (v.to_f64() - mean) * rstd;
                *o = T::from_f64(rstd * (gv.to_f64() - g_mean - xhat * gx_mean));
            }
        });
    Ok((T::to_cpu_storage_owned(out), lx.shape().clone()))
}

impl CustomOp2 for NormalizeBwd {
    fn name(&self) -> &'static str {
        "lmkit-normalize-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch2!(s1, l1, s2, l2, normalize_bwd, self.eps)
    }
}

/// Layer normalisation over the last dimension, differentiable in x, weight and bias.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let normed = if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.contiguous()?.apply_op1(Normalize { eps })?
    } else {
        // Composed ops: slower, but candle differentiates them on every device.
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + eps)?.sqrt()?)?
    };
    normed.broadcast_mul(weight)?.broadcast_add(bias)
}

// ---------------------------------------------------------------- softmax over the last dim

struct Softmax;

fn softmax_fwd<T: Float>(s: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    let (x, n) = rows(s, l)?;
    let mut out = vec![T::from_f64(0.0); x.len()];
    out.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .for_each(|(o, r)| {
            let mut max = r[0];
            for &v in r {
                if v > max {
                    max = v;
                }
            }
            let mut sum = T::from_f64(0.0);
            for (o, &v) in o.iter_mut().zip(r) {
                let e = (v - max).exp();
                *o = e;
                sum += e;
            }
            for o in o.iter_mut() {
                *o /= sum;
            }
        });
    Ok((T::to_cpu_storage_owned(out), l.shape().clone()))
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "lmkit-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch1!(s, l, softmax_fwd)
    }
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(res.apply_op2_no_bwd(&grad, &SoftmaxBwd)?))
    }
}

/// dx = y * (g - sum(g * y)).
struct SoftmaxBwd;

fn softmax_bwd<T: Float>(
    ys: &[T],
    ly: &Layout,
    gs: &[T],
    lg: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let (y, n) = rows(ys, ly)?;
    let (g, _) = rows(gs, lg)?;
    let mut out = vec![T::from_f64(0.0); y.len()];
    out.par_chunks_mut(n)
        .zip(y.par_chunks(n).zip(g.par_chunks(n)))
        .for_each(|(o, (y, g))| {
            let mut dot = T::from_f64(0.0);
            for (&a, &b) in y.iter().zip(g) {
                dot += a * b;
            }
            for ((o, &a), &b) in o.iter_mut().zip(y).zip(g) {
                *o = a * (b - dot);
            }
        });
    Ok((T::to_cpu_storage_owned(out), ly.shape().clone()))
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "lmkit-softmax-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch2!(s1, l1, s2, l2, softmax_bwd)
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.contiguous()?.apply_op1(Softmax)
    } else {
        let max = x.max_keepdim(D::Minus1)?;
        let e = x.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn composed_ln(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + eps)?.sqrt()?)?
            .broadcast_mul(w)?
            .broadcast_add(b)
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    #[test]
    fn fused_layer_norm_matches_composed_ops_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f64, 2.0, (3, 5, 7), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(1f64, 0.5, 7, &dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f64, 0.5, 7, &dev)?)?;
        let up = Tensor::randn(0f64, 1.0, (3, 5, 7), &dev)?;
        let fused = layer_norm(&x, &w, &b, 1e-12)?;
        let composed = composed_ln(&x, &w, &b, 1e-12)?;
        assert!(max_abs_diff(&fused, &composed) < 1e-12);
        let gf = (fused * &up)?.sum_all()?.backward()?;
        let gc = (composed * &up)?.sum_all()?.backward()?;
        for v in [&x, &w, &b] {
            let a = gf.get(v).expect("fused grad");
            let c = gc.get(v).expect("composed grad");
            assert!(max_abs_diff(a, c) < 1e-10, "grad mismatch");
        }
        Ok(())
    }

    #[test]
    fn fused_softmax_matches_composed_ops_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f64, 3.0, (4, 6, 9), &dev)?)?;
        let up = Tensor::randn(0f64, 1.0, (4, 6, 9), &dev)?;
        let fused = softmax_last_dim(&x)?;
        let max = x.max_keepdim(D::Minus1)?;
        let e = x.broadcast_sub(&max)?.exp()?;
        let composed = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
        assert!(max_abs_diff(&fused, &composed) < 1e-14);
        let gf = (fused * &up)?.sum_all()?.backward()?;
        let gc = (composed * &up)?.sum_all()?.backward()?;
        assert!(max_abs_diff(gf.get(&x).unwrap(), gc.get(&x).unwrap()) < 1e-12);
        Ok(())
    }
}
