//! Matrix multiplies of the encoder layers as CPU ops with their own backward pass.
//!
//! Composed from candle ops, a linear layer is reshape + transpose + matmul + broadcast add, and
//! attention splits heads with transposed copies and runs one small parallel gemm per head. In
//! training each of those nodes costs a pass over memory forward and another two backward
//! (candle accumulates every gradient into a fresh zero tensor), and the bias gradient is a
//! single-threaded strided reduction. A profile of one training step put ~25% of it there. Here:
//! - [`linear`]: the bias is written into the output before the gemm adds x W^T to it; backward
//!   is two gemms and a parallel column sum.
//! - [`attention_scores`] / [`attention_context`]: per-head gemms read q, k, v straight from the
//!   (batch, seq, heads * head_dim) projections through strides and write the context back in
//!   that layout, so no head is ever copied; heads run in parallel, one gemm each.
//!
//! Every op falls back to composed candle ops off the CPU or for dtypes other than f32/f64.

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

use super::{contiguous_data as data, fused_cpu as fused, SendPtr};
use gemm::Parallelism;
use rayon::prelude::*;

fn threads() -> Parallelism {
    match candle_core::utils::get_num_threads() {
        0 | 1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// A matrix inside a buffer: `rs`/`cs` are its row and column strides.
#[derive(Clone, Copy, Debug)]
struct Mat {
    rs: usize,
    cs: usize,
}

impl Mat {
    const fn t(self) -> Self {
        Self {
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// Whether f32 products take `nn::kernels::sgemm` where it applies: yes, unless LMKIT_GEMM=crate (for
/// A/B timing against the gemm crate).
fn own_sgemm() -> bool {
    static OWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OWN.get_or_init(|| std::env::var("LMKIT_GEMM").map_or(true, |v| v != "crate"))
}

/// dst (m x n) = alpha * a (m x k) . b (k x n), optionally added to what dst holds.
///
/// # Safety
/// The pointers must cover the matrices their strides describe, and dst must not overlap a or b.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into<T: 'static + candle_core::WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    d: Mat,
    accumulate: bool,
    a: *const T,
    am: Mat,
    b: *const T,
    bm: Mat,
    alpha: f64,
    par: Parallelism,
) {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && own_sgemm()
        && super::sgemm::takes(m, n, k, am.cs)
    {
        // SAFETY: T is f32; the caller's guarantees are sgemm's, and `takes` said yes.
        return super::sgemm::sgemm(
            (m, n, k),
            dst as *mut f32,
            (d.rs, d.cs),
            accumulate,
            a as *const f32,
            am.rs,
            b as *const f32,
            (bm.rs, bm.cs),
            alpha as f32,
            !matches!(par, Parallelism::None),
        );
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        d.cs as isize,
        d.rs as isize,
        accumulate,
        a,
        am.cs as isize,
        am.rs as isize,
        b,
        bm.cs as isize,
        bm.rs as isize,
        T::from_f64(1.0),
        T::from_f64(alpha),
        false,
        false,
        false,
        par,
    )
}

/// `row` repeated `rows` times, written by all threads straight into fresh memory (one thread,
/// or zeroing first, left the other core idle for ~1.6% of an inference).
fn repeat_rows<T: Copy + Send + Sync>(row: &[T], rows: usize) -> Vec<T> {
    let n = row.len();
    let mut y: Vec<T> = Vec::with_capacity(rows * n);
    if let Some(per) = 16384usize.checked_div(n) {
        let per = per.max(1) * n;
        y.spare_capacity_mut()[..rows * n]
            .par_chunks_mut(per)
            .for_each(|c| c.chunks_mut(n).for_each(|r| _ = r.write_copy_of_slice(row)));
    }
    // SAFETY: every one of the rows * n elements was written above.
    unsafe { y.set_len(rows * n) };
    y
}

// ---------------------------------------------------------------- linear

/// y = x W^T + b for x (rows, in), W (out, in), b (out).
struct LinearOp;

fn linear_fwd<T: 'static + candle_core::WithDType>(
    x: &[T],
    lx: &Layout,
    w: &[T],
    lw: &Layout,
    b: &[T],
    lb: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let (x, w, b) = (data(x, lx)?, data(w, lw)?, data(b, lb)?);
    let (out, inp) = lw.shape().dims2()?;
    if lx.dims().last() != Some(&inp) || b.len() != out {
        candle_core::bail!(
            "linear: input {:?}, weight {:?}, bias {:?} do not fit",
            lx.dims(),
            lw.dims(),
            lb.dims()
        )
    }
    let rows = x.len() / inp.max(1);
    let mut y = repeat_rows(b, rows);
    // SAFETY: y is rows x out, x rows x in, W out x in (read transposed through strides).
    unsafe {
        gemm_into(
            (rows, out, inp),
            y.as_mut_ptr(),
            Mat { rs: out, cs: 1 },
            true,
            x.as_ptr(),
            Mat { rs: inp, cs: 1 },
            w.as_ptr(),
            Mat { rs: inp, cs: 1 }.t(),
            1.0,
            threads(),
        )
    };
    let mut shape = lx.dims().to_vec();
    *shape.last_mut().expect("x has a last dimension") = out;
    Ok((T::to_cpu_storage_owned(y), Shape::from(shape)))
}

custom_op! {
    impl CustomOp3 for LinearOp, "lmkit-linear",
    fn cpu_fwd(&self, s1, l1, s2, l2, s3, l3) {
        dispatch3!(s1, l1, s2, l2, s3, l3, linear_fwd)
    }
    fn bwd(&self, x, w, _b, _res, g) {
        let (dx, dw, db) = linear_backward(x, w, g)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The linear layer's backward: (dx, dW, db) from the gradient `dy` of its output. Shared by
/// candle's autograd (`LinearOp::bwd`) and the written-out backward (`nn::encoder`).
pub(crate) fn linear_backward(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    // Detached: gradients must not carry a graph (a weight's would keep the step's whole
    // forward alive through the optimizer's moments).
    let out = w.dim(0)?;
    let g = dy.detach().contiguous()?.reshape(((), out))?;
    let (dx, dw) = linear_grads(&g, &x.detach(), &w.detach())?;
    let db = column_sum(&g)?;
    Ok((dx, dw, db))
}

/// dx = g W and dW = g^T x, each one gemm straight into a fresh buffer, skipping candle's
/// `matmul` wrapper (its layout checks, the transposed view, a zero-filled output): on this
/// model's shapes the pair ran 2-9% faster, in-process A/B, 20 alternating runs per shape.
fn linear_grads(g: &Tensor, x: &Tensor, w: &Tensor) -> Result<(Tensor, Tensor)> {
    fn grads<T: 'static + candle_core::WithDType>(
        g: &[T],
        x: &[T],
        w: &[T],
        (rows, out, inp): (usize, usize, usize),
        x_shape: &Shape,
        dev: &candle_core::Device,
    ) -> Result<(Tensor, Tensor)> {
        let mut dx: Vec<T> = Vec::with_capacity(rows * inp);
        let mut dw: Vec<T> = Vec::with_capacity(out * inp);
        let gm = Mat { rs: out, cs: 1 };
        let im = Mat { rs: inp, cs: 1 };
        // SAFETY: g is rows x out, x rows x in, W out x in, dx rows x in and dW out x in, as
        // the strides say; without `accumulate` the gemm writes every element of its output
        // and reads none, so the lengths are set after it.
        unsafe {
            gemm_into(
                (rows, inp, out),
                dx.as_mut_ptr(),
                im,
                false,
                g.as_ptr(),
                gm,
                w.as_ptr(),
                im,
                1.0,
                threads(),
            );
            dx.set_len(rows * inp);
            gemm_into(
                (out, inp, rows),
                dw.as_mut_ptr(),
                im,
                false,
                g.as_ptr(),
                gm.t(),
                x.as_ptr(),
                im,
                1.0,
                threads(),
            );
            dw.set_len(out * inp);
        }
        Ok((
            Tensor::from_vec(dx, x_shape, dev)?,
            Tensor::from_vec(dw, (out, inp), dev)?,
        ))
    }
    let (out, inp) = w.dims2()?;
    let rows = g.dim(0)?;
    if g.dim(1)? != out || x.elem_count() != rows * inp {
        candle_core::bail!(
            "linear backward: gradient {:?}, input {:?}, weight {:?} do not fit",
            g.dims(),
            x.dims(),
            w.dims()
        )
    }
    if rows * out * inp == 0 {
        // Nothing to multiply (the gemm would leave its output unwritten).
        return Ok((x.zeros_like()?, w.zeros_like()?));
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let (gs, gl) = g.storage_and_layout();
    let (xs, xl) = x.storage_and_layout();
    let (ws, wl) = w.storage_and_layout();
    let dims = (rows, out, inp);
    let dev = x.device();
    let (dx, dw) = match (&*gs, &*xs, &*ws) {
        (
            candle_core::Storage::Cpu(CpuStorage::F32(gv)),
            candle_core::Storage::Cpu(CpuStorage::F32(xv)),
            candle_core::Storage::Cpu(CpuStorage::F32(wv)),
        ) => grads(
            data(gv, gl)?,
            data(xv, xl)?,
            data(wv, wl)?,
            dims,
            x.shape(),
            dev,
        )?,
        (
            candle_core::Storage::Cpu(CpuStorage::F64(gv)),
            candle_core::Storage::Cpu(CpuStorage::F64(xv)),
            candle_core::Storage::Cpu(CpuStorage::F64(wv)),
        ) => grads(
            data(gv, gl)?,
            data(xv, xl)?,
            data(wv, wl)?,
            dims,
            x.shape(),
            dev,
        )?,
        _ => {
            drop((gs, xs, ws));
            let dx = g.matmul(&w)?.reshape(x.shape())?;
            let dw = g.t()?.matmul(&x.reshape(((), inp))?)?;
            (dx, dw)
        }
    };
    Ok((dx, dw))
}

/// Sums of the columns of a contiguous (rows, cols) matrix, split over threads by rows.
pub fn column_sum(g: &Tensor) -> Result<Tensor> {
    fn sum<T: candle_core::WithDType + std::ops::AddAssign>(g: &[T], cols: usize) -> Vec<T> {
        let rows = g.len() / cols.max(1);
        let per = rows.div_ceil(rayon::current_num_threads().max(1)).max(1);
        g.par_chunks(per * cols)
            .map(|block| {
                let mut acc = vec![T::zero(); cols];
                for r in block.chunks(cols) {
                    for (a, &v) in acc.iter_mut().zip(r) {
                        *a += v;
                    }
                }
                acc
            })
            .reduce(
                || vec![T::zero(); cols],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                    a
                },
            )
    }
    let (_, cols) = g.dims2()?;
    let g = g.contiguous()?;
    let (s, l) = g.storage_and_layout();
    let out = match &*s {
        candle_core::Storage::Cpu(CpuStorage::F32(v)) => {
            Tensor::new(sum(data(v, l)?, cols), g.device())?
        }
        candle_core::Storage::Cpu(CpuStorage::F64(v)) => {
            Tensor::new(sum(data(v, l)?, cols), g.device())?
        }
        _ => {
            drop(s);
            return g.sum(0);
        }
    };
    Ok(out)
}

/// `x W^T + b` on W (and b) packed once (inference), or None when the packed path does not
/// take x (not f32 on the CPU with the layer's width, or enough rows that [`super::sgemm`]
/// picks another tile).
pub(crate) fn linear_packed(x: &Tensor, p: &super::sgemm::PackedWeight) -> Result<Option<Tensor>> {
    let (inp, out) = p.shape();
    if !super::takes_rows(x, inp) {
        return Ok(None);
    }
    let rows = x.elem_count() / inp.max(1);
    if !p.takes(rows) {
        return Ok(None);
    }
    let parallel = !matches!(threads(), Parallelism::None);
    super::map_rows(x, inp, out, "linear", |xs| {
        let mut y = p.bias_rows(rows);
        // SAFETY: `takes` said yes for these rows; xs is rows x inp, y rows x out.
        unsafe { p.matmul_acc(rows, xs.as_ptr(), inp, y.as_mut_ptr(), out, parallel) };
        y
    })
    .map(Some)
}

/// `x W^T + b` over the last dimension of x, differentiable in all three; W is (out, in) as
/// PyTorch stores it.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    if let Some(b) = b {
        if fused(x) && x.dtype() == w.dtype() && b.dtype() == w.dtype() {
            // Any rank: the op reads x as (rows, in), so no reshape nodes (each would cost
            // a zero-filled gradient and an add in the backward pass).
            return x
                .contiguous()?
                .apply_op3(&w.contiguous()?, &b.contiguous()?, LinearOp);
        }
    }
    let dims = x.dims().to_vec();
    let inp = *dims.last().unwrap_or(&1);
    let rows = x.elem_count() / inp.max(1);
    let y = x.reshape((rows, inp))?.matmul(&w.t()?)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut shape = dims;
    *shape.last_mut().expect("x has at least one dimension") = w.dim(0)?;
    y.reshape(shape)
}

// ---------------------------------------------------------------- attention

/// Shapes of one attention call: `batch` x `heads`, `sq` queries, `sk` keys, `d` per head.
#[derive(Clone, Copy, Debug)]
struct Heads {
    batch: usize,
    heads: usize,
    sq: usize,
    sk: usize,
    d: usize,
}

impl Heads {
    /// Head h of batch item i in a (batch, seq, heads * d) projection: a seq x d matrix.
    fn proj(&self, seq: usize, i: usize, h: usize) -> (usize, Mat) {
        let hd = self.heads * self.d;
        (i * seq * hd + h * self.d, Mat { rs: hd, cs: 1 })
    }
    /// Head h of batch item i in (batch, heads, sq, sk) scores.
    fn scores(&self, i: usize, h: usize) -> (usize, Mat) {
        (
            (i * self.heads + h) * self.sq * self.sk,
            Mat { rs: self.sk, cs: 1 },
        )
    }
}

/// One gemm per (batch item, head), in parallel (each gemm single-threaded: the heads are
/// small, and one at a time they would spend more on thread hand-offs than on arithmetic).
/// `place(i, h)` gives the offset and strides of the output and both operands.
#[allow(clippy::type_complexity)]
fn per_head<T: 'static + candle_core::WithDType>(
    out_len: usize,
    hs: Heads,
    mnk: (usize, usize, usize),
    a: &[T],
    b: &[T],
    alpha: f64,
    place: impl Fn(usize, usize) -> ((usize, Mat), (usize, Mat), (usize, Mat)) + Sync,
) -> Vec<T> {
    let mut out = vec![T::zero(); out_len];
    let dst = SendPtr(out.as_mut_ptr());
    (0..hs.batch * hs.heads).into_par_iter().for_each(|ih| {
        let (i, h) = (ih / hs.heads, ih % hs.heads);
        let ((od, dm), (oa, am), (ob, bm)) = place(i, h);
        // SAFETY: `place` maps each (i, h) to its own block of `out`, inside its bounds, and to
        // blocks inside `a` and `b`; the blocks of different (i, h) do not overlap.
        unsafe {
            gemm_into(
                mnk,
                dst.get().add(od),
                dm,
                false,
                a.as_ptr().add(oa),
                am,
                b.as_ptr().add(ob),
                bm,
                alpha,
                Parallelism::None,
            )
        }
    });
    out
}

/// scores (batch, heads, sq, sk) = scale * q_h k_h^T from q (batch, sq, heads * d) and
/// k (batch, sk, heads * d).
struct ScoresOp {
    heads: usize,
    scale: f64,
}

impl ScoresOp {
    fn shapes(&self, lq: &Layout, lk: &Layout) -> Result<Heads> {
        let (batch, sq, hd) = lq.shape().dims3()?;
        let (bk, sk, hdk) = lk.shape().dims3()?;
        if bk != batch || hdk != hd || !hd.is_multiple_of(self.heads) {
            candle_core::bail!(
                "attention scores: q {:?} and k {:?} do not match",
                lq.dims(),
                lk.dims()
            )
        }
        Ok(Heads {
            batch,
            heads: self.heads,
            sq,
            sk,
            d: hd / self.heads,
        })
    }
}

fn scores_fwd<T: 'static + candle_core::WithDType>(
    q: &[T],
    lq: &Layout,
    k: &[T],
    lk: &Layout,
    op: &ScoresOp,
) -> Result<(CpuStorage, Shape)> {
    let hs = op.shapes(lq, lk)?;
    let (q, k) = (data(q, lq)?, data(k, lk)?);
    let out = per_head(
        hs.batch * hs.heads * hs.sq * hs.sk,
        hs,
        (hs.sq, hs.sk, hs.d),
        q,
        k,
        op.scale,
        |i, h| {
            let (ok, km) = hs.proj(hs.sk, i, h);
            (hs.scores(i, h), hs.proj(hs.sq, i, h), (ok, km.t()))
        },
    );
    let shape = Shape::from((hs.batch, hs.heads, hs.sq, hs.sk));
    Ok((T::to_cpu_storage_owned(out), shape))
}

/// dq = scale * g_h k_h and dk = scale * g_h^T q_h, in the projections' layout.
struct ScoresBwd {
    scale: f64,
    wrt_q: bool,
}

fn scores_bwd<T: 'static + candle_core::WithDType>(
    g: &[T],
    lg: &Layout,
    other: &[T],
    lo: &Layout,
    op: &ScoresBwd,
    hs: Heads,
) -> Result<(CpuStorage, Shape)> {
    let (g, other) = (data(g, lg)?, data(other, lo)?);
    let (rows, other_rows) = if op.wrt_q {
        (hs.sq, hs.sk)
    } else {
        (hs.sk, hs.sq)
    };
    let out = per_head(
        hs.batch * rows * hs.heads * hs.d,
        hs,
        (rows, hs.d, other_rows),
        g,
        other,
        op.scale,
        |i, h| {
            let (og, gm) = hs.scores(i, h);
            let gm = if op.wrt_q { gm } else { gm.t() };
            (hs.proj(rows, i, h), (og, gm), hs.proj(other_rows, i, h))
        },
    );
    let shape = Shape::from((hs.batch, rows, hs.heads * hs.d));
    Ok((T::to_cpu_storage_owned(out), shape))
}

custom_op! {
    impl CustomOp2 for ScoresBwd, "lmkit-attention-scores-bwd",
    fn cpu_fwd(&self, s1, l1, s2, l2) {
        // s1: the gradient of the scores; s2: k (for dq) or q (for dk).
        let (batch, heads, sq, sk) = l1.shape().dims4()?;
        let (_, _, hd) = l2.shape().dims3()?;
        let hs = Heads {
            batch,
            heads,
            sq,
            sk,
            d: hd / heads,
        };
        dispatch2!(s1, l1, s2, l2, scores_bwd, self, hs)
    }
}

custom_op! {
    impl CustomOp2 for ScoresOp, "lmkit-attention-scores",
    fn cpu_fwd(&self, s1, l1, s2, l2) {
        dispatch2!(s1, l1, s2, l2, scores_fwd, self)
    }
    fn bwd(&self, q, k, _res, g) {
        let (dq, dk) = attention_scores_backward(q, k, self.scale, g)?;
        Ok((Some(dq), Some(dk)))
    }
}

/// (dq, dk) of [`attention_scores`] from the gradient `g` of the scores.
pub(crate) fn attention_scores_backward(
    q: &Tensor,
    k: &Tensor,
    scale: f64,
    g: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let g = g.contiguous()?;
    let bwd = |wrt_q: bool, other: &Tensor| g.apply_op2_no_bwd(other, &ScoresBwd { scale, wrt_q });
    Ok((bwd(true, k)?, bwd(false, q)?))
}

/// Attention scores `scale * q k^T` per head, (batch, heads, sq, sk), from projections q
/// (batch, sq, heads * d) and k (batch, sk, heads * d); differentiable in q and k.
pub fn attention_scores(q: &Tensor, k: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    if fused(q) && q.dtype() == k.dtype() {
        return q
            .contiguous()?
            .apply_op2(&k.contiguous()?, ScoresOp { heads, scale });
    }
    let split = |t: &Tensor| -> Result<Tensor> {
        let (b, s, hd) = t.dims3()?;
        t.reshape((b, s, heads, hd / heads))?
            .transpose(1, 2)?
            .contiguous()
    };
    split(q)?.matmul(&split(k)?.t()?)? * scale
}

/// context (batch, sq, heads * d) = p_h v_h, from probabilities (batch, heads, sq, sk) and
/// v (batch, sk, heads * d).
struct ContextOp;

fn context_shapes(lp: &Layout, lv: &Layout) -> Result<Heads> {
    let (batch, heads, sq, sk) = lp.shape().dims4()?;
    let (bv, skv, hd) = lv.shape().dims3()?;
    if bv != batch || skv != sk || !hd.is_multiple_of(heads) {
        candle_core::bail!(
            "attention context: p {:?} and v {:?} do not match",
            lp.dims(),
            lv.dims()
        )
    }
    Ok(Heads {
        batch,
        heads,
        sq,
        sk,
        d: hd / heads,
    })
}

fn context_fwd<T: 'static + candle_core::WithDType>(
    p: &[T],
    lp: &Layout,
    v: &[T],
    lv: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let hs = context_shapes(lp, lv)?;
    let (p, v) = (data(p, lp)?, data(v, lv)?);
    let out = per_head(
        hs.batch * hs.sq * hs.heads * hs.d,
        hs,
        (hs.sq, hs.d, hs.sk),
        p,
        v,
        1.0,
        |i, h| (hs.proj(hs.sq, i, h), hs.scores(i, h), hs.proj(hs.sk, i, h)),
    );
    let shape = Shape::from((hs.batch, hs.sq, hs.heads * hs.d));
    Ok((T::to_cpu_storage_owned(out), shape))
}

/// dp = g_h v_h^T (scores layout) or dv = p_h^T g_h (projection layout).
struct ContextBwd {
    heads: usize,
    wrt_p: bool,
}

fn context_bwd<T: 'static + candle_core::WithDType>(
    g: &[T],
    lg: &Layout,
    other: &[T],
    lo: &Layout,
    op: &ContextBwd,
    hs: Heads,
) -> Result<(CpuStorage, Shape)> {
    let (g, other) = (data(g, lg)?, data(other, lo)?);
    if op.wrt_p {
        // dp (sq x sk) = g (sq x d) . v^T (d x sk)
        let out = per_head(
            hs.batch * hs.heads * hs.sq * hs.sk,
            hs,
            (hs.sq, hs.sk, hs.d),
            g,
            other,
            1.0,
            |i, h| {
                let (ov, vm) = hs.proj(hs.sk, i, h);
                (hs.scores(i, h), hs.proj(hs.sq, i, h), (ov, vm.t()))
            },
        );
        let shape = Shape::from((hs.batch, hs.heads, hs.sq, hs.sk));
        Ok((T::to_cpu_storage_owned(out), shape))
    } else {
        // dv (sk x d) = p^T (sk x sq) . g (sq x d)
        let out = per_head(
            hs.batch * hs.sk * hs.heads * hs.d,
            hs,
            (hs.sk, hs.d, hs.sq),
            other,
            g,
            1.0,
            |i, h| {
                let (op_, pm) = hs.scores(i, h);
                (hs.proj(hs.sk, i, h), (op_, pm.t()), hs.proj(hs.sq, i, h))
            },
        );
        let shape = Shape::from((hs.batch, hs.sk, hs.heads * hs.d));
        Ok((T::to_cpu_storage_owned(out), shape))
    }
}

custom_op! {
    impl CustomOp2 for ContextBwd, "lmkit-attention-context-bwd",
    fn cpu_fwd(&self, s1, l1, s2, l2) {
        // s1: the gradient of the context (batch, sq, heads * d); s2: v (for dp) or p (for dv).
        let (batch, sq, hd) = l1.shape().dims3()?;
        let sk = if self.wrt_p {
            l2.shape().dims3()?.1
        } else {
            l2.shape().dims4()?.3
        };
        let hs = Heads {
            batch,
            heads: self.heads,
            sq,
            sk,
            d: hd / self.heads,
        };
        dispatch2!(s1, l1, s2, l2, context_bwd, self, hs)
    }
}

custom_op! {
    impl CustomOp2 for ContextOp, "lmkit-attention-context",
    fn cpu_fwd(&self, s1, l1, s2, l2) {
        dispatch2!(s1, l1, s2, l2, context_fwd)
    }
    fn bwd(&self, p, v, _res, g) {
        let (dp, dv) = attention_context_backward(p, v, g)?;
        Ok((Some(dp), Some(dv)))
    }
}

/// (dp, dv) of [`attention_context`] from the gradient `g` of the context.
pub(crate) fn attention_context_backward(
    p: &Tensor,
    v: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let g = g.contiguous()?;
    let heads = p.dim(1)?;
    let dp = g.apply_op2_no_bwd(v, &ContextBwd { heads, wrt_p: true })?;
    let dv = g.apply_op2_no_bwd(
        p,
        &ContextBwd {
            heads,
            wrt_p: false,
        },
    )?;
    Ok((dp, dv))
}

/// The attention context `p v` per head, (batch, sq, heads * d), from probabilities
/// (batch, heads, sq, sk) and v (batch, sk, heads * d); differentiable in p and v.
pub fn attention_context(p: &Tensor, v: &Tensor) -> Result<Tensor> {
    if fused(p) && p.dtype() == v.dtype() {
        return p.contiguous()?.apply_op2(&v.contiguous()?, ContextOp);
    }
    let (b, heads, sq, _) = p.dims4()?;
    let (_, sk, hd) = v.dims3()?;
    let v = v
        .reshape((b, sk, heads, hd / heads))?
        .transpose(1, 2)?
        .contiguous()?;
    p.matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, sq, hd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::max_abs_diff;
    use candle_core::{Device, Var};

    fn var(shape: &[usize], seed: f64) -> Var {
        // Deterministic, varied values without an RNG dependency.
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|i| ((i as f64 + seed) * 0.7369).sin() * 1.5)
            .collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    // f64 throughout: the fused and composed paths differ only by summation order, so 1e-12
    // covers sums of a few dozen terms of size ~1 (each rounding ~1e-16).
    #[test]
    fn fused_linear_matches_composed_ops_forward_and_backward() -> Result<()> {
        let (x, w, b) = (var(&[2, 3, 5], 0.0), var(&[4, 5], 1.0), var(&[4], 2.0));
        let up = var(&[2, 3, 4], 3.0);
        let fused = linear(&x, &w, Some(&b))?;
        let composed = x.broadcast_matmul(&w.t()?)?.broadcast_add(&b)?;
        assert_eq!(fused.dims(), &[2, 3, 4]);
        assert!(max_abs_diff(&fused, &composed) < 1e-12);
        let gf = (fused * up.as_tensor())?.sum_all()?.backward()?;
        let gc = (composed * up.as_tensor())?.sum_all()?.backward()?;
        for v in [&x, &w, &b] {
            let (a, c) = (
                gf.get(v).expect("fused grad"),
                gc.get(v).expect("composed grad"),
            );
            assert_eq!(a.dims(), c.dims());
            assert!(max_abs_diff(a, c) < 1e-12, "grad mismatch");
            assert!(!a.track_op(), "gradients carry no graph");
        }
        Ok(())
    }

    fn split(t: &Tensor, heads: usize) -> Tensor {
        let (b, s, hd) = t.dims3().unwrap();
        t.reshape((b, s, heads, hd / heads))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    }

    #[test]
    fn fused_attention_matches_composed_ops_forward_and_backward() -> Result<()> {
        // Different query and key lengths, so a transposed view would show.
        let heads = 3;
        let (q, k, v) = (
            var(&[2, 4, 6], 0.0),
            var(&[2, 5, 6], 1.0),
            var(&[2, 5, 6], 2.0),
        );
        let up = var(&[2, 4, 6], 3.0);
        let scale = 0.7;
        let scores = attention_scores(&q, &k, heads, scale)?;
        let ref_scores = (split(&q, heads).matmul(&split(&k, heads).t()?)? * scale)?;
        assert!(max_abs_diff(&scores, &ref_scores) < 1e-12);
        let ctx = attention_context(&crate::nn::softmax_last_dim(&scores)?, &v)?;
        let ref_ctx = crate::nn::softmax_last_dim(&ref_scores)?
            .matmul(&split(&v, heads))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((2, 4, 6))?;
        assert!(max_abs_diff(&ctx, &ref_ctx) < 1e-12);
        let gf = (ctx * up.as_tensor())?.sum_all()?.backward()?;
        let gc = (ref_ctx * up.as_tensor())?.sum_all()?.backward()?;
        for t in [&q, &k, &v] {
            let (a, c) = (
                gf.get(t).expect("fused grad"),
                gc.get(t).expect("composed grad"),
            );
            assert_eq!(a.dims(), t.dims());
            assert!(max_abs_diff(a, c) < 1e-12, "grad mismatch");
        }
        Ok(())
    }

    #[test]
    fn column_sum_adds_rows() -> Result<()> {
        let g = var(&[37, 3], 0.5);
        let want = g.sum(0)?;
        assert!(max_abs_diff(&column_sum(&g)?, &want) < 1e-12);
        Ok(())
    }
}
