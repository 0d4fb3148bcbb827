//! f32 matrix multiply for the linear layers' forward and input-gradient products on AVX2 + FMA.
//!
//! Why by hand: the `gemm` crate (candle's) ran this model's projection shapes at 45-60% of
//! an AVX2 EPYC's FMA peak. A BLIS-style loop nest beat it by 1.1-1.25x on the forward shapes in
//! interleaved timings: A and B packed into 6-row and 16-column panels, a 6 x 16 register tile,
//! C prefetched before each tile, k in blocks of 384 and m in blocks of at most 72 rows
//! (bench/README.md has the runs). It did not beat the crate on the weight-gradient products
//! (k = tokens, A read transposed), so those stay there: [`takes`] wants A row-major.

use std::cell::RefCell;

use rayon::prelude::*;

use super::SendPtr;

const MR: usize = 6;
const NR: usize = 16;
/// k per packed block: a 16-column B panel of 384 k is 24 KiB and stays in L1.
const KC: usize = 384;
/// Rows per packed A block, at most: 72 x 384 floats (108 KiB) stay in L2.
const MC: usize = 72;

/// Whether [`sgemm`] takes this product: AVX2 + FMA, A row-major (unit column stride), and big
/// enough that packing pays (the per-head attention products stay on the gemm crate).
pub(crate) fn takes(m: usize, n: usize, k: usize, a_col_stride: usize) -> bool {
    a_col_stride == 1
        && m >= 4 * MR
        && n >= NR
        && k >= 16
        && m * n * k >= 1 << 21
        && super::avx2_fma()
}

thread_local! {
    static PACKED_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PACKED_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f` on this thread's buffer, grown to `len` (kept for the next call: a fresh one per call
/// was page faults and zero-filling). A nested call on the same thread gets a buffer of its own.
fn with_buffer<R>(
    cell: &'static std::thread::LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    cell.with(|c| match c.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// c (m x n) = (accumulate ? c : 0) + alpha * a (m x k) . b (k x n), every matrix given by a
/// pointer and its row and column strides (in elements).
///
/// # Safety
/// [`takes`] must have returned true for these sizes and `acs`; the pointers must cover the
/// matrices their strides describe; c must not overlap a or b.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    (m, n, k): (usize, usize, usize),
    c: *mut f32,
    (crs, ccs): (usize, usize),
    accumulate: bool,
    a: *const f32,
    ars: usize,
    b: *const f32,
    (brs, bcs): (usize, usize),
    alpha: f32,
    parallel: bool,
) {
    let threads = if parallel {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    // Blocks of at most MC rows, a whole number per thread where the rows allow.
    let per = m.div_ceil(threads * MC).max(1);
    let mc = m.div_ceil(threads * per).div_ceil(MR) * MR;
    let panels = n.div_ceil(NR);
    let (a, b, c) = (SendPtr(a as *mut f32), SendPtr(b as *mut f32), SendPtr(c));
    with_buffer(&PACKED_B, KC * panels * NR, |bp| {
        let bp = SendPtr(bp.as_mut_ptr());
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let pack_b = |j: usize| pack_b(b.get(), (brs, bcs), n, pc, kc, j, bp.get());
            let block = |i: usize| {
                let rows = (i * mc)..(m.min((i + 1) * mc));
                let load = accumulate || pc > 0;
                let dst = (c.get(), crs, ccs);
                block_product(a.get(), ars, rows, pc, kc, bp.get(), n, dst, alpha, load)
            };
            if parallel {
                (0..panels).into_par_iter().for_each(pack_b);
                (0..m.div_ceil(mc)).into_par_iter().for_each(block);
            } else {
                (0..panels).for_each(pack_b);
                (0..m.div_ceil(mc)).for_each(block);
            }
        }
    })
}

/// Panel j of B's rows pc..pc + kc into bp: for each k, NR consecutive columns (0 past n).
unsafe fn pack_b(
    b: *const f32,
    (brs, bcs): (usize, usize),
    n: usize,
    pc: usize,
    kc: usize,
    j: usize,
    bp: *mut f32,
) {
    let dst = bp.add(j * kc * NR);
    let cols = NR.min(n - j * NR);
    if bcs == 1 {
        for p in 0..kc {
            let src = b.add((pc + p) * brs + j * NR);
            for jj in 0..NR {
                *dst.add(p * NR + jj) = if jj < cols { *src.add(jj) } else { 0.0 };
            }
        }
    } else {
        for jj in 0..NR {
            let col = j * NR + jj;
            for p in 0..kc {
                *dst.add(p * NR + jj) = if jj < cols {
                    *b.add((pc + p) * brs + col * bcs)
                } else {
                    0.0
                };
            }
        }
    }
}

/// One block of A's rows times all of packed B, into c.
#[allow(clippy::too_many_arguments)]
unsafe fn block_product(
    a: *const f32,
    ars: usize,
    rows: std::ops::Range<usize>,
    pc: usize,
    kc: usize,
    bp: *const f32,
    n: usize,
    (c, crs, ccs): (*mut f32, usize, usize),
    alpha: f32,
    load: bool,
) {
    let tiles = rows.len().div_ceil(MR);
    with_buffer(&PACKED_A, tiles * MR * kc, |ap| {
        // Row tiles of A: for each k, MR consecutive rows (0 past the block).
        for t in 0..tiles {
            let dst = &mut ap[t * MR * kc..(t + 1) * MR * kc];
            for ii in 0..MR {
                let row = rows.start + t * MR + ii;
                if row < rows.end {
                    let src = std::slice::from_raw_parts(a.add(row * ars + pc), kc);
                    for (p, &v) in src.iter().enumerate() {
                        dst[p * MR + ii] = v;
                    }
                } else {
                    (0..kc).for_each(|p| dst[p * MR + ii] = 0.0);
                }
            }
        }
        let mut tile = [0f32; MR * NR];
        for j in 0..n.div_ceil(NR) {
            let bj = bp.add(j * kc * NR);
            let cols = NR.min(n - j * NR);
            for t in 0..tiles {
                let at = ap.as_ptr().add(t * MR * kc);
                let r0 = rows.start + t * MR;
                let n_rows = MR.min(rows.end - r0);
                let c0 = c.add(r0 * crs + j * NR * ccs);
                if n_rows == MR && cols == NR && ccs == 1 {
                    avx2::tile(kc, at, bj, c0, crs, alpha, load);
                } else {
                    avx2::tile(kc, at, bj, tile.as_mut_ptr(), NR, 1.0, false);
                    for i in 0..n_rows {
                        for jj in 0..cols {
                            let d = c0.add(i * crs + jj * ccs);
                            let v = alpha * tile[i * NR + jj];
                            *d = if load { *d + v } else { v };
                        }
                    }
                }
            }
        }
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// c (MR x NR, row stride rs) = (load ? c : 0) + alpha * sum_k a[k] (x) b[k]: twelve
    /// accumulators, per k two loads of b, six broadcasts of a, twelve FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rs: usize,
        alpha: f32,
        load: bool,
    ) {
        // C's rows are far apart in memory: ask for them now, not after the k loop.
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * rs) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * rs + NR - 1) as *const i8);
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for (i, r) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*a.add(i));
                r[0] = _mm256_fmadd_ps(x, b0, r[0]);
                r[1] = _mm256_fmadd_ps(x, b1, r[1]);
            }
            a = a.add(MR);
            b = b.add(NR);
        }
        let al = _mm256_set1_ps(alpha);
        for (i, r) in acc.iter().enumerate() {
            for (h, &v) in r.iter().enumerate() {
                let p = c.add(i * rs + 8 * h);
                let y = if load {
                    _mm256_fmadd_ps(v, al, _mm256_loadu_ps(p))
                } else {
                    _mm256_mul_ps(v, al)
                };
                _mm256_storeu_ps(p, y);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    pub unsafe fn tile(
        _: usize,
        _: *const f32,
        _: *const f32,
        _: *mut f32,
        _: usize,
        _: f32,
        _: bool,
    ) {
        unreachable!("`takes` is false without AVX2")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::nn::kernels::test_uniform as values;

    /// Against the product in f64. Any order of k f32 multiply-adds is within
    /// gamma_k sum |a b| of the exact result (Higham, gamma_k = k u / (1 - k u), u = 2^-24);
    /// the alpha scaling and the add into c cost two more roundings of |c| + |alpha| sum |a b|.
    #[test]
    fn matches_the_exact_product_within_the_rounding_bound() {
        if !super::super::avx2_fma() {
            eprintln!("no AVX2 + FMA: sgemm is not used on this CPU");
            return;
        }
        let u = 1.0 / (1u64 << 24) as f64;
        // (m, n, k, B transposed (read as W^T), accumulate, alpha, c column stride)
        let cases = [
            (3072, 384, 384, true, false, 1.0, 1),
            (100, 70, 900, true, true, 0.5, 1),
            (97, 45, 800, false, false, 1.0, 1),
            (64, 33, 1000, false, true, -2.0, 2),
        ];
        for (ci, &(m, n, k, bt, acc, alpha, ccs)) in cases.iter().enumerate() {
            assert!(takes(m, n, k, 1), "case {ci} is big enough");
            let a = values(m * k, 1 + ci as u64);
            let b = values(k * n, 11 + ci as u64);
            let (brs, bcs) = if bt { (1, k) } else { (n, 1) };
            let crs = n * ccs;
            let c0 = values(m * crs, 21 + ci as u64);
            for parallel in [true, false] {
                let mut c = c0.clone();
                // SAFETY: the buffers are m x k, k x n and m x (n * ccs) as the strides say.
                unsafe {
                    sgemm(
                        (m, n, k),
                        c.as_mut_ptr(),
                        (crs, ccs),
                        acc,
                        a.as_ptr(),
                        k,
                        b.as_ptr(),
                        (brs, bcs),
                        alpha,
                        parallel,
                    )
                };
                let gamma = k as f64 * u / (1.0 - k as f64 * u);
                for i in 0..m {
                    for j in 0..n {
                        let (mut exact, mut mag) = (0f64, 0f64);
                        for p in 0..k {
                            let t = a[i * k + p] as f64 * b[p * brs + j * bcs] as f64;
                            exact += t;
                            mag += t.abs();
                        }
                        let old = if acc {
                            c0[i * crs + j * ccs] as f64
                        } else {
                            0.0
                        };
                        let want = old + alpha as f64 * exact;
                        let bound = (gamma + 2.0 * u) * (old.abs() + alpha.abs() as f64 * mag);
                        let got = c[i * crs + j * ccs] as f64;
                        assert!(
                            (got - want).abs() <= bound,
                            "case {ci} ({i}, {j}): {got} vs {want}, bound {bound}"
                        );
                    }
                }
                // Columns between the strided ones are untouched.
                if ccs > 1 {
                    for i in 0..m {
                        assert_eq!(c[i * crs + 1], c0[i * crs + 1], "case {ci} row {i}");
                    }
                }
            }
        }
    }
}
