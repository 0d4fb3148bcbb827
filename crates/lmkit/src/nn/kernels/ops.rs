//! Fused CPU kernels with their own backward pass.
//!
//! candle's fused `layer_norm` and `softmax_last_dim` have no backward, so anything before them
//! silently gets no gradient (candle issues #2168, #2977, #3011). These ops compute the same maths
//! in one pass over memory and define `bwd`, so they are both correct for training and fast.
//! On devices other than the CPU the callers fall back to composed tensor ops, which candle can
//! differentiate.

use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::fast;

/// Rows of the last dimension of a contiguous tensor.
fn rows<'a, T>(s: &'a [T], layout: &Layout) -> Result<(&'a [T], usize)> {
    let n = layout.dims().last().copied().unwrap_or(1);
    Ok((super::contiguous_data(s, layout)?, n.max(1)))
}

/// A float type the kernels run on (f32 for models, f64 for gradient checks).
pub(super) trait Float:
    candle_core::WithDType
    + Copy
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + std::ops::MulAssign
    + std::ops::DivAssign
    + PartialOrd
{
    /// In place: row <- softmax(row).
    fn softmax_row(row: &mut [Self]);
    fn dropout_chunk(x: &[Self], out: &mut [Self], start: u32, keys: [u32; 3], scale: Self);
    fn dot(a: &[Self], b: &[Self]) -> Self;
}
impl Float for f32 {
    fn softmax_row(row: &mut [f32]) {
        fast::softmax_row(row)
    }
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        fast::dot(a, b)
    }
    fn dropout_chunk(x: &[f32], out: &mut [f32], start: u32, keys: [u32; 3], scale: f32) {
        fast::dropout(x, out, start, keys, scale)
    }
}
/// f64 is for the gradient checks: plain loops, libm's exp.
impl Float for f64 {
    fn softmax_row(row: &mut [f64]) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for o in row.iter_mut() {
            *o = (*o - max).exp();
            sum += *o;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|o| *o *= inv);
    }
    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(a, b)| a * b).sum()
    }
    fn dropout_chunk(x: &[f64], out: &mut [f64], start: u32, keys: [u32; 3], scale: f64) {
        dropout_chunk(x, out, start, keys, scale)
    }
}

// ---------------------------------------------------------------- layer norm

/// Per-row mean and 1/sqrt(var + eps) (biased variance, as PyTorch), accumulated in f64.
fn row_stats<T: Float>(r: &[T], eps: f64) -> (f64, f64) {
    let inv_n = 1.0 / r.len() as f64;
    let mean = sum4(r, |v| v) * inv_n;
    let var = sum4(r, |v| (v - mean) * (v - mean)) * inv_n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Sum of f(x) in f64 over 4 lanes (one running sum is a chain the compiler keeps scalar).
#[inline(always)]
fn sum4<T: Float>(r: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 4];
    let c = r.chunks_exact(4);
    let rest = c.remainder();
    for x in c {
        for i in 0..4 {
            acc[i] += f(x[i].to_f64());
        }
    }
    acc.iter().sum::<f64>() + rest.iter().map(|v| f(v.to_f64())).sum::<f64>()
}

/// y = (x - mean) / sqrt(var + eps) * weight + bias over the last dimension.
struct LayerNormOp {
    eps: f64,
}

fn layer_norm_fwd<T: Float>(
    xs: &[T],
    lx: &Layout,
    ws: &[T],
    lw: &Layout,
    bs: &[T],
    lb: &Layout,
    eps: f64,
) -> Result<(CpuStorage, Shape)> {
    let (x, n) = rows(xs, lx)?;
    let (w, _) = rows(ws, lw)?;
    let (b, _) = rows(bs, lb)?;
    if w.len() != n || b.len() != n {
        candle_core::bail!("layer norm: weight/bias of {} for rows of {n}", w.len())
    }
    let mut out = vec![T::from_f64(0.0); x.len()];
    out.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .for_each(|(o, r)| {
            let (mean, rstd) = row_stats(r, eps);
            let (mean, rstd) = (T::from_f64(mean), T::from_f64(rstd));
            for (((o, &v), &w), &b) in o.iter_mut().zip(r).zip(w).zip(b) {
                *o = (v - mean) * rstd * w + b;
            }
        });
    Ok((T::to_cpu_storage_owned(out), lx.shape().clone()))
}

custom_op! {
    impl CustomOp3 for LayerNormOp, "lmkit-layer-norm",
    fn cpu_fwd(&self, s1, l1, s2, l2, s3, l3) {
        dispatch3!(s1, l1, s2, l2, s3, l3, layer_norm_fwd, self.eps)
    }
    fn bwd(&self, x, w, _b, _res, g) {
        let (dx, dw, db) = layer_norm_backward(x, w, self.eps, g)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// (dx, dweight, dbias) of the fused [`layer_norm`] from the gradient `g` of its output.
pub(crate) fn layer_norm_backward(
    x: &Tensor,
    w: &Tensor,
    eps: f64,
    g: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let g = g.contiguous()?;
    let n = w.elem_count();
    let rows_n = x.elem_count();
    // One pass gives dx and the two column sums, packed one after another.
    let packed = x.apply_op3_no_bwd(&g, w, &LayerNormBwd { eps })?;
    let dx = packed.narrow(0, 0, rows_n)?.reshape(x.shape())?;
    let dw = packed.narrow(0, rows_n, n)?.reshape(w.shape())?;
    let db = packed.narrow(0, rows_n + n, n)?.reshape(w.shape())?;
    Ok((dx, dw, db))
}

/// With xhat = (x - mean) * rstd and gw = g * weight:
/// dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)), dweight = sum_rows g * xhat,
/// dbias = sum_rows g; returned packed as [dx, dweight, dbias].
struct LayerNormBwd {
    eps: f64,
}

fn layer_norm_bwd<T: Float>(
    xs: &[T],
    lx: &Layout,
    gs: &[T],
    lg: &Layout,
    ws: &[T],
    lw: &Layout,
    eps: f64,
) -> Result<(CpuStorage, Shape)> {
    let (x, n) = rows(xs, lx)?;
    let (g, _) = rows(gs, lg)?;
    let (w, _) = rows(ws, lw)?;
    let mut out = vec![T::from_f64(0.0); x.len() + 2 * n];
    let (dx, sums) = out.split_at_mut(x.len());
    let rows_n = x.len() / n;
    let block = rows_n
        .div_ceil(rayon::current_num_threads().max(1) * 4)
        .max(1)
        * n;
    let (dw, db) = dx
        .par_chunks_mut(block)
        .zip(x.par_chunks(block).zip(g.par_chunks(block)))
        .map(|(o, (x, g))| {
            let mut dw = vec![0f64; n];
            let mut db = vec![0f64; n];
            for ((o, r), g) in o.chunks_mut(n).zip(x.chunks(n)).zip(g.chunks(n)) {
                let (mean, rstd) = row_stats(r, eps);
                let (mut gw_mean, mut gwx_mean) = (0.0, 0.0);
                for (j, (v, gv)) in r.iter().zip(g).enumerate() {
                    let xhat = (v.to_f64() - mean) * rstd;
                    let gv = gv.to_f64();
                    let gw = gv * w[j].to_f64();
                    gw_mean += gw;
                    gwx_mean += gw * xhat;
                    dw[j] += gv * xhat;
                    db[j] += gv;
                }
                gw_mean /= n as f64;
                gwx_mean /= n as f64;
                for (j, (o, v)) in o.iter_mut().zip(r).enumerate() {
                    let xhat = (v.to_f64() - mean) * rstd;
                    let gw = g[j].to_f64() * w[j].to_f64();
                    *o = T::from_f64(rstd * (gw - gw_mean - xhat * gwx_mean));
                }
            }
            (dw, db)
        })
        .reduce(
            || (vec![0f64; n], vec![0f64; n]),
            |(mut a, mut b), (c, d)| {
                a.iter_mut().zip(c).for_each(|(a, c)| *a += c);
                b.iter_mut().zip(d).for_each(|(b, d)| *b += d);
                (a, b)
            },
        );
    for (o, v) in sums.iter_mut().zip(dw.iter().chain(&db)) {
        *o = T::from_f64(*v);
    }
    Ok((T::to_cpu_storage_owned(out), Shape::from(x.len() + 2 * n)))
}

custom_op! {
    impl CustomOp3 for LayerNormBwd, "lmkit-layer-norm-bwd",
    fn cpu_fwd(&self, s1, l1, s2, l2, s3, l3) {
        dispatch3!(s1, l1, s2, l2, s3, l3, layer_norm_bwd, self.eps)
    }
}

/// Layer normalisation over the last dimension, differentiable in x, weight and bias.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if super::fused_cpu(x) && weight.dtype() == x.dtype() && bias.dtype() == x.dtype() {
        return x.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &bias.contiguous()?,
            LayerNormOp { eps },
        );
    }
    // Composed ops: slower, but candle differentiates them on every device.
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    xc.broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

// ---------------------------------------------------------------- softmax over the last dim

struct Softmax;

/// softmax(x + bias) per row; `bias` (one row per `per` rows of x) may be empty.
fn softmax_rows<T: Float>(x: &[T], n: usize, bias: &[T], per: usize) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); x.len()];
    out.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .enumerate()
        .for_each(|(i, (o, r))| {
            match bias.chunks(n).nth(i / per.max(1)) {
                Some(b) => o
                    .iter_mut()
                    .zip(r.iter().zip(b))
                    .for_each(|(o, (&v, &b))| *o = v + b),
                None => o.copy_from_slice(r),
            }
            T::softmax_row(o);
        });
    out
}

fn softmax_fwd<T: Float>(s: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    let (x, n) = rows(s, l)?;
    Ok((
        T::to_cpu_storage_owned(softmax_rows(x, n, &[], 1)),
        l.shape().clone(),
    ))
}

custom_op! {
    impl CustomOp1 for Softmax, "lmkit-softmax",
    fn cpu_fwd(&self, s, l) {
        dispatch1!(s, l, softmax_fwd)
    }
    fn bwd(&self, _arg, res, grad) {
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
            let dot = T::dot(y, g);
            for ((o, &a), &b) in o.iter_mut().zip(y).zip(g) {
                *o = a * (b - dot);
            }
        });
    Ok((T::to_cpu_storage_owned(out), ly.shape().clone()))
}

custom_op! {
    impl CustomOp2 for SoftmaxBwd, "lmkit-softmax-bwd",
    fn cpu_fwd(&self, s1, l1, s2, l2) {
        dispatch2!(s1, l1, s2, l2, softmax_bwd)
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if super::fused_cpu(x) {
        x.contiguous()?.apply_op1(Softmax)
    } else {
        let max = x.max_keepdim(D::Minus1)?;
        let e = x.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
    }
}

/// softmax(scores + bias) with an attention bias (batch, 1, 1, keys) added in the same pass.
struct MaskedSoftmax;

fn masked_softmax_fwd<T: Float>(
    ss: &[T],
    ls: &Layout,
    bs: &[T],
    lb: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let (x, n) = rows(ss, ls)?;
    let (b, _) = rows(bs, lb)?;
    let batch = ls.dims()[0];
    if b.len() != batch * n {
        candle_core::bail!(
            "masked softmax: bias {:?} for scores {:?}",
            lb.dims(),
            ls.dims()
        )
    }
    let per = x.len() / n / batch;
    Ok((
        T::to_cpu_storage_owned(softmax_rows(x, n, b, per)),
        ls.shape().clone(),
    ))
}

custom_op! {
    impl CustomOp2 for MaskedSoftmax, "lmkit-masked-softmax",
    fn cpu_fwd(&self, s1, l1, s2, l2) {
        dispatch2!(s1, l1, s2, l2, masked_softmax_fwd)
    }
    fn bwd(&self, _scores, _bias, res, grad) {
        // The bias is a constant of the padding mask: no gradient.
        Ok((Some(softmax_backward(res, grad)?), None))
    }
}

/// The gradient of a softmax's input from its output `y` and the gradient `g` of that output
/// (for [`softmax_last_dim`] and [`masked_softmax`] alike: the bias adds no term).
pub(crate) fn softmax_backward(y: &Tensor, g: &Tensor) -> Result<Tensor> {
    y.apply_op2_no_bwd(&g.contiguous()?, &SoftmaxBwd)
}

/// `softmax(scores + bias)` over the last dimension of scores (batch, heads, queries, keys) with
/// an attention bias (batch, 1, 1, keys) as [`crate::nn::attention_bias`] makes; differentiable
/// in the scores.
pub fn masked_softmax(scores: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (batch, _, _, keys) = scores.dims4()?;
    if super::fused_cpu(scores)
        && bias.dtype() == scores.dtype()
        && bias.elem_count() == batch * keys
    {
        return scores
            .contiguous()?
            .apply_op2(&bias.contiguous()?, MaskedSoftmax);
    }
    softmax_last_dim(&scores.broadcast_add(bias)?)
}

// ---------------------------------------------------------------- GELU (erf form)

/// x * Phi(x), as `torch.nn.functional.gelu(approximate="none")`.
struct Gelu;

fn gelu_fwd_f32(x: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(8192)
        .zip(x.par_chunks(8192))
        .for_each(|(o, x)| fast::gelu(x, o));
    out
}

custom_op! {
    impl CustomOp1 for Gelu, "lmkit-gelu",
    fn cpu_fwd(&self, s, l) {
        match s {
            CpuStorage::F32(v) => {
                let (x, _) = rows(v, l)?;
                Ok((CpuStorage::F32(gelu_fwd_f32(x)), l.shape().clone()))
            }
            _ => candle_core::bail!("lmkit-gelu: f32 only"),
        }
    }
    fn bwd(&self, arg, _res, grad) {
        Ok(Some(gelu_erf_backward(arg, grad)?))
    }
}

/// The gradient of [`gelu_erf`]'s input x from the gradient `g` of its output:
/// g * (Phi(x) + x * phi(x)). Fused for f32 on the CPU, composed (without a graph) elsewhere.
pub(crate) fn gelu_erf_backward(x: &Tensor, g: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x.contiguous()?.apply_op2_no_bwd(&g.contiguous()?, &GeluBwd);
    }
    g.detach() * gelu_erf_derivative(&x.detach())?
}

/// Phi(x) + x * phi(x), composed from tensor ops.
fn gelu_erf_derivative(x: &Tensor) -> Result<Tensor> {
    use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};
    let cdf = ((x * FRAC_1_SQRT_2)?.erf()? + 1.0)? * 0.5;
    // 1 / sqrt(2 pi) = (2 / sqrt(pi)) / (2 sqrt(2)).
    let pdf = (x.sqr()? * -0.5)?.exp()? * (0.5 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2);
    cdf? + (x * pdf?)?
}

/// GELU (erf) and its derivative, (output, derivative), without a graph: for a written-out
/// backward pass, which keeps the derivative instead of the input and multiplies it into the
/// gradient. f32 on the CPU in one pass and one exp per element.
pub(crate) fn gelu_erf_with_grad(x: &Tensor) -> Result<(Tensor, Tensor)> {
    if !(x.device().is_cpu() && x.dtype() == DType::F32) {
        let x = x.detach();
        return Ok((x.gelu_erf()?, gelu_erf_derivative(&x)?));
    }
    let x = x.contiguous()?;
    let (s, l) = x.storage_and_layout();
    let candle_core::Storage::Cpu(CpuStorage::F32(v)) = &*s else {
        candle_core::bail!("gelu: f32 CPU tensor expected")
    };
    let (v, _) = rows(v, l)?;
    let n = v.len();
    let mut out = vec![0f32; 2 * n];
    let (y, d) = out.split_at_mut(n);
    y.par_chunks_mut(8192)
        .zip(d.par_chunks_mut(8192))
        .zip(v.par_chunks(8192))
        .for_each(|((y, d), v)| fast::gelu_with_grad(v, y, d));
    drop(s);
    // One buffer, two contiguous views of it.
    let packed = Tensor::from_vec(out, 2 * n, x.device())?;
    Ok((
        packed.narrow(0, 0, n)?.reshape(x.shape())?,
        packed.narrow(0, n, n)?.reshape(x.shape())?,
    ))
}

/// dx = g * (Phi(x) + x * phi(x)).
struct GeluBwd;

custom_op! {
    impl CustomOp2 for GeluBwd, "lmkit-gelu-bwd",
    fn cpu_fwd(&self, s1, l1, s2, l2) {
        match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                let (x, _) = rows(x, l1)?;
                let (g, _) = rows(g, l2)?;
                let mut out = vec![0f32; x.len()];
                out.par_chunks_mut(8192)
                    .zip(x.par_chunks(8192).zip(g.par_chunks(8192)))
                    .for_each(|(o, (x, g))| fast::gelu_grad(x, g, o));
                Ok((CpuStorage::F32(out), l1.shape().clone()))
            }
            _ => candle_core::bail!("lmkit-gelu-bwd: f32 only"),
        }
    }
}

/// GELU with the erf, differentiable. On f32 CPU tensors erf is computed as PyTorch's own
/// vectorised CPU kernel does (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7) so it vectorises;
/// elsewhere candle's `gelu_erf`.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1(Gelu)
    } else {
        x.gelu_erf()
    }
}

// ---------------------------------------------------------------- dropout

/// Inverted dropout with its mask a pure function of (`base`, element index): the backward pass
/// recomputes the mask instead of keeping it.
#[derive(Clone, Copy)]
pub(crate) struct DropoutOp {
    pub base: u64,
    /// Elements whose 32-bit draw is below this (p * 2^32) are dropped.
    pub threshold: u32,
    pub scale: f64,
}

impl DropoutOp {
    fn apply<T: Float>(&self, x: &[T]) -> Vec<T> {
        let scale = T::from_f64(self.scale);
        let zero = T::from_f64(0.0);
        let (k1, k2) = (self.base as u32, (self.base >> 32) as u32);
        let mut out = vec![zero; x.len()];
        out.par_chunks_mut(4096)
            .zip(x.par_chunks(4096))
            .enumerate()
            .for_each(|(c, (o, x))| {
                T::dropout_chunk(x, o, (c * 4096) as u32, [k1, k2, self.threshold], scale)
            });
        out
    }
}

/// out[j] = x[j] * scale, or 0 where the draw of element `start + j` is below `threshold`.
#[inline(always)]
pub(super) fn dropout_chunk<T: Float>(
    x: &[T],
    out: &mut [T],
    start: u32,
    [k1, k2, threshold]: [u32; 3],
    scale: T,
) {
    let zero = T::from_f64(0.0);
    for (j, (o, &v)) in out.iter_mut().zip(x).enumerate() {
        let r = keyed_hash32(start.wrapping_add(j as u32), k1, k2);
        *o = if r >= threshold { v * scale } else { zero };
    }
}

/// The draw for element i: 32-bit integer hashing (Wellons' `lowbias32`, two rounds with a
/// key before each) vectorises, where a 64-bit splitmix per element kept dropout scalar and
/// cost ~3.5% of a training step. Two keyed rounds, so that two calls' masks are not shifted
/// copies of one sequence.
#[inline(always)]
fn keyed_hash32(i: u32, k1: u32, k2: u32) -> u32 {
    fn lowbias32(mut x: u32) -> u32 {
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb_352d);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846c_a68b);
        x ^ (x >> 16)
    }
    lowbias32(lowbias32(i ^ k1) ^ k2)
}

custom_op! {
    impl CustomOp1 for DropoutOp, "lmkit-dropout",
    fn cpu_fwd(&self, s, l) {
        match s {
            CpuStorage::F32(v) => Ok((
                CpuStorage::F32(self.apply(rows(v, l)?.0)),
                l.shape().clone(),
            )),
            CpuStorage::F64(v) => Ok((
                CpuStorage::F64(self.apply(rows(v, l)?.0)),
                l.shape().clone(),
            )),
            _ => candle_core::bail!("lmkit-dropout: f32 or f64 only"),
        }
    }
    fn bwd(&self, _arg, _res, grad) {
        Ok(Some(self.backward(grad)?))
    }
}

impl DropoutOp {
    /// The gradient of the input: the same mask and scale applied to the output's gradient.
    pub(crate) fn backward(&self, grad: &Tensor) -> Result<Tensor> {
        grad.contiguous()?.apply_op1_no_bwd(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::max_abs_diff;
    use candle_core::{Device, Var};

    fn composed_ln(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + eps)?.sqrt()?)?
            .broadcast_mul(w)?
            .broadcast_add(b)
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

#[cfg(test)]
mod fused_tests {
    use super::*;
    use crate::nn::kernels::max_abs_diff;
    use candle_core::{Device, Var};

    #[test]
    fn masked_softmax_matches_composed_ops_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f64, 3.0, (2, 3, 4, 5), &dev)?)?;
        let mask = Tensor::new(&[[1f64, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]], &dev)?;
        let bias = crate::nn::attention_bias(&mask, DType::F64)?;
        let up = Tensor::randn(0f64, 1.0, (2, 3, 4, 5), &dev)?;
        let fused = masked_softmax(&x, &bias)?;
        let composed = softmax_last_dim(&x.broadcast_add(&bias)?)?;
        assert!(max_abs_diff(&fused, &composed) < 1e-15);
        // Padded keys get exactly zero weight.
        let padded = fused.narrow(0, 0, 1)?.narrow(3, 3, 2)?;
        assert_eq!(padded.abs()?.sum_all()?.to_scalar::<f64>()?, 0.0);
        let gf = (fused * &up)?.sum_all()?.backward()?;
        let gc = (composed * &up)?.sum_all()?.backward()?;
        assert!(max_abs_diff(gf.get(&x).unwrap(), gc.get(&x).unwrap()) < 1e-14);
        Ok(())
    }

    #[test]
    fn f32_softmax_row_and_dot_are_within_rounding_of_f64() {
        // Per element of a softmax row of n, relative to the f64 result: 3 ulp from exp, the
        // rounding of x - max (|x - max| <= 16 here, so up to 16 u in the exponent), n - 1
        // additions in the sum and one division and multiply: (n + 24) * EPSILON bounds it
        // with room to spare (EPSILON = 2u).
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut uniform = || {
            state = crate::nn::layers::splitmix64(state);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for n in [1usize, 3, 7, 8, 9, 16, 22, 48, 49, 100] {
            let x: Vec<f32> = (0..n).map(|_| 16.0 * uniform() - 8.0).collect();
            let mut y = x.clone();
            fast::softmax_row(&mut y);
            let max = x
                .iter()
                .map(|&v| v as f64)
                .fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for (got, want) in y.iter().zip(&e) {
                let want = want / sum;
                let rel = (*got as f64 - want).abs() / want;
                assert!(
                    rel <= (n + 24) as f64 * f32::EPSILON as f64,
                    "n {n}: {got} vs {want}"
                );
            }
            // dot: n products and n - 1 additions, each within u of its exact value, against
            // the sum of |a b| (the condition of a dot product).
            let b: Vec<f32> = (0..n).map(|_| 2.0 * uniform() - 1.0).collect();
            let want: f64 = x.iter().zip(&b).map(|(&a, &b)| a as f64 * b as f64).sum();
            let scale: f64 = x
                .iter()
                .zip(&b)
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum();
            let err = (fast::dot(&x, &b) as f64 - want).abs();
            assert!(
                err <= (n + 1) as f64 * f32::EPSILON as f64 * scale,
                "dot n {n}"
            );
        }
    }

    #[test]
    fn fast_exp_is_within_3_ulp() {
        // Cephes' expf is accurate to ~1-2 ulp; 3 ulp = 3 * 2^-23 relative.
        let mut x = -87.3f32;
        while x <= 0.0 {
            let want = (x as f64).exp();
            let got = fast::exp(x) as f64;
            assert!(
                (got - want).abs() <= 3.0 * f32::EPSILON as f64 * want,
                "exp({x})"
            );
            x += 0.0137;
        }
        assert_eq!(fast::exp(-100.0), 0.0);
        assert_eq!(fast::exp(f32::MIN), 0.0);
        assert_eq!(fast::exp(0.0), 1.0);
        assert!(fast::exp(f32::NAN).is_nan());
    }

    /// erf as f64 by its Taylor series (|x| < 3) or 1 (beyond, where 1 - erf < 2.3e-5 is not
    /// needed: the test only goes to 3).
    fn erf64(x: f64) -> f64 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn gelu_forward_and_backward_match_the_exact_formulas() -> Result<()> {
        // The error budget: A&S 7.1.26 erf |e| < 1.5e-7, plus exp's 3 ulp inside it (< 4e-7 in
        // all), scaled by 0.5 |x| in GELU, plus one f32 rounding of the result (1.2e-7 |y|).
        let xs: Vec<f32> = (0..1200).map(|i| -6.0 + i as f32 * 0.01).collect();
        let x = Tensor::new(xs.as_slice(), &Device::Cpu)?;
        let y = gelu_erf(&x)?.to_vec1::<f32>()?;
        let var = Var::from_tensor(&x)?;
        let g = gelu_erf(&var)?.sum_all()?.backward()?;
        let dy = g.get(&var).unwrap().to_vec1::<f32>()?;
        // The one-pass output + derivative of the written-out backward, to the same bounds.
        let (y1, d1) = gelu_erf_with_grad(&x)?;
        let (y1, d1) = (y1.to_vec1::<f32>()?, d1.to_vec1::<f32>()?);
        let pairs = y.iter().zip(&dy).chain(y1.iter().zip(&d1));
        for (&xv, (&yv, &dv)) in xs.iter().cycle().zip(pairs) {
            let x64 = xv as f64;
            let cdf = 0.5 * (1.0 + erf64(x64 / std::f64::consts::SQRT_2));
            let want = x64 * cdf;
            let tol = 2.0e-7 * x64.abs() + 1.2e-7 * want.abs() + 1e-12;
            assert!(
                (yv as f64 - want).abs() <= tol,
                "gelu({xv}) = {yv}, want {want}"
            );
            let pdf = (-0.5 * x64 * x64).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let dwant = cdf + x64 * pdf;
            // cdf error 2e-7, x * pdf (<= 0.25) with 3 ulp, two roundings.
            assert!(
                (dv as f64 - dwant).abs() <= 6e-7,
                "gelu'({xv}) = {dv}, want {dwant}"
            );
        }
        Ok(())
    }

    #[test]
    fn dropout_backward_applies_the_forward_mask() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (50, 40), &dev)?)?;
        let up = Tensor::randn(0f32, 1.0, (50, 40), &dev)?;
        let op = DropoutOp {
            base: 12345,
            threshold: 1 << 31,
            scale: 2.0,
        };
        let mask = Tensor::ones((50, 40), DType::F32, &dev)?.apply_op1_no_bwd(&op)?;
        let y = x.apply_op1(op)?;
        assert_eq!(max_abs_diff(&y, &(x.as_tensor() * &mask)?), 0.0);
        let g = (y * &up)?.sum_all()?.backward()?;
        assert_eq!(max_abs_diff(g.get(&x).unwrap(), &(up * mask)?), 0.0);
        Ok(())
    }
}
