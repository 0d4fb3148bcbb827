//! f32 matrix multiply for the linear layers' forward and input-gradient products, on AVX2 +
//! FMA (6 x 16 register tiles) or AVX-512 (12 x 32 tiles, chosen at run time).
//!
//! Why by hand: the `gemm` crate (candle's) ran this model's projection shapes at 45-60% of
//! an AVX2 EPYC's FMA peak. A BLIS-style loop nest beat it by 1.1-1.25x on the forward shapes in
//! interleaved timings: A and B packed into 6-row and 16-column panels, a 6 x 16 register tile,
//! C prefetched before each tile, k in blocks of 384 and m in blocks of at most 72 rows
//! (bench/README.md has the runs). It did not beat the crate on the weight-gradient products
//! (k = tokens, A read transposed), so those stay there: [`takes`] wants A row-major.
//!
//! AVX-512 has 32 vector registers of 16 floats: a 12 x 32 tile keeps 24 accumulators and
//! loads two B vectors and broadcasts one A value per 24 FMAs (AVX2's 6 x 16 tile: two loads and
//! one broadcast per 12). On CPUs that split a 512-bit FMA into two 256-bit halves (AMD Zen 4)
//! the peak rate is AVX2's, and there the 12 x 32 tile measured 4-9% slower than the 6 x 16 one;
//! on CPUs with full-width 512-bit FMA units (Intel Sapphire Rapids: 404 against 230 GFLOP/s on
//! 2 cores) it is the faster one. So it runs only where `isa` measured full-width FMA.

use std::cell::RefCell;

use rayon::prelude::*;

use super::SendPtr;

/// A register tile: its shape, the blocking around it, and its kernel.
trait Tile {
    /// Rows of A (and C) per tile.
    const MR: usize;
    /// Columns of B (and C) per tile.
    const NR: usize;
    /// k per packed block: a B panel of NR x KC floats stays in L1.
    const KC: usize;
    /// Rows per packed A block, at most, a multiple of MR: MC x KC floats stay in L2.
    const MC: usize;
    /// c (MR x NR, row stride rs) = (load ? c : 0) + alpha * sum over kc of a[k] (x) b[k], from
    /// packed panels.
    ///
    /// # Safety
    /// The CPU has the tile's instructions; a covers kc * MR floats, b kc * NR, and c the tile.
    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rs: usize,
        alpha: f32,
        load: bool,
    );
}

/// 6 x 16: a 16-column B panel of 384 k is 24 KiB; 72 x 384 floats of A are 108 KiB.
struct Avx2;
impl Tile for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    const KC: usize = 384;
    const MC: usize = 72;
    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rs: usize,
        alpha: f32,
        load: bool,
    ) {
        avx2::tile(kc, a, b, c, rs, alpha, load)
    }
}

/// 12 x 32: a 32-column B panel of 256 k is 32 KiB; 96 x 256 floats of A are 96 KiB.
struct Avx512;
impl Tile for Avx512 {
    const MR: usize = 12;
    const NR: usize = 32;
    const KC: usize = 256;
    const MC: usize = 96;
    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rs: usize,
        alpha: f32,
        load: bool,
    ) {
        avx512::tile(kc, a, b, c, rs, alpha, load)
    }
}

/// Whether [`sgemm`] takes this product: AVX2 + FMA, A row-major (unit column stride), and big
/// enough that packing pays (the per-head attention products stay on the gemm crate). Few rows
/// are fine: for one 12-token sentence through MiniLM, the gemm crate ran 53 sentences/s and
/// this kernel 70 (`bench infer --batch 1 --seq 12`, Sapphire Rapids, 2 threads).
pub(crate) fn takes(m: usize, n: usize, k: usize, a_col_stride: usize) -> bool {
    a_col_stride == 1 && n >= Avx2::NR && k >= 16 && m * n * k >= 1 << 16 && super::avx2_fma()
}

/// Whether the AVX-512 tile runs this product (else the AVX2 one): the CPU has it, and the
/// product fills several of its bigger tiles.
fn wide(m: usize, n: usize) -> bool {
    let f = super::isa::features();
    m >= 4 * Avx512::MR && n >= Avx512::NR && f.avx512 && f.fma512_full_width
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
    let args = (
        (m, n, k),
        c,
        (crs, ccs),
        accumulate,
        a,
        ars,
        b,
        (brs, bcs),
        alpha,
        parallel,
    );
    if wide(m, n) {
        sgemm_with::<Avx512>(args)
    } else {
        sgemm_with::<Avx2>(args)
    }
}

type SgemmArgs = (
    (usize, usize, usize),
    *mut f32,
    (usize, usize),
    bool,
    *const f32,
    usize,
    *const f32,
    (usize, usize),
    f32,
    bool,
);

/// A linear layer's W^T packed once for the AVX2 tile, as [`sgemm`] would pack it on every
/// call: for each block of KC k, the NR-column panels. Packing on every call was 38% of an
/// inference of one sentence (`perf`, MiniLM 1 x 16), where the weights are big and x small.
pub(crate) struct PackedWeight {
    n: usize,
    k: usize,
    data: Vec<f32>,
    /// The layer's bias (zeros without one), the first term of every output row.
    bias: Vec<f32>,
}

impl std::fmt::Debug for PackedWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedWeight({} -> {})", self.k, self.n)
    }
}

impl PackedWeight {
    /// `w` is (n, k) row-major, as PyTorch stores a linear layer's weight; `bias` has n values.
    pub(crate) fn new(w: &[f32], bias: Option<Vec<f32>>, n: usize, k: usize) -> Self {
        let panels = n.div_ceil(Avx2::NR);
        let mut data = vec![0f32; k * panels * Avx2::NR];
        for pc in (0..k).step_by(Avx2::KC) {
            let kc = Avx2::KC.min(k - pc);
            for j in 0..panels {
                // SAFETY: w is n x k (B = W^T read with strides (1, k)); the block for pc
                // starts at pc * panels * NR and holds kc * panels * NR floats.
                unsafe {
                    pack_b::<Avx2>(
                        w.as_ptr(),
                        (1, k),
                        n,
                        pc,
                        kc,
                        j,
                        data.as_mut_ptr().add(pc * panels * Avx2::NR),
                    )
                };
            }
        }
        let bias = bias.unwrap_or_else(|| vec![0.0; n]);
        assert_eq!(bias.len(), n, "a bias value per output");
        Self { n, k, data, bias }
    }

    /// The layer's input and output widths.
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// Rows of `bias` for m rows of output, ready to accumulate into.
    pub(crate) fn bias_rows(&self, m: usize) -> Vec<f32> {
        let mut y = Vec::with_capacity(m * self.n);
        for _ in 0..m {
            y.extend_from_slice(&self.bias);
        }
        y
    }

    /// Whether x W^T for `m` rows runs on these packed weights: the AVX2 tile is the one
    /// [`sgemm`] would choose, and the sizes are the weight's.
    pub(crate) fn takes(&self, m: usize) -> bool {
        takes(m, self.n, self.k, 1) && !wide(m, self.n)
    }

    /// c (m x n, row stride crs) += a (m x k, row stride ars) . W^T.
    ///
    /// # Safety
    /// [`Self::takes`] said yes for m; a and c cover the matrices their strides describe.
    pub(crate) unsafe fn matmul_acc(
        &self,
        m: usize,
        a: *const f32,
        ars: usize,
        c: *mut f32,
        crs: usize,
        parallel: bool,
    ) {
        let args = (
            (m, self.n, self.k),
            c,
            (crs, 1),
            true,
            a,
            ars,
            std::ptr::null(),
            (1, self.k),
            1.0,
            parallel,
        );
        sgemm_packed::<Avx2>(args, Some(SendPtr(self.data.as_ptr() as *mut f32)))
    }
}

/// [`sgemm`] with tile T.
unsafe fn sgemm_with<T: Tile>(args: SgemmArgs) {
    sgemm_packed::<T>(args, None)
}

/// [`sgemm`] with tile T, and B packed already (`pre`, laid out as [`PackedWeight`]) or not.
unsafe fn sgemm_packed<T: Tile>(
    ((m, n, k), c, (crs, ccs), accumulate, a, ars, b, (brs, bcs), alpha, parallel): SgemmArgs,
    pre: Option<SendPtr<f32>>,
) {
    let (mr, nr, kcb, mcb) = (T::MR, T::NR, T::KC, T::MC);
    let threads = if parallel {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    // Blocks of at most MC rows, a whole number per thread where the rows allow.
    let per = m.div_ceil(threads * mcb).max(1);
    let mc = m.div_ceil(threads * per).div_ceil(mr) * mr;
    let panels = n.div_ceil(nr);
    let (a, b, c) = (SendPtr(a as *mut f32), SendPtr(b as *mut f32), SendPtr(c));
    let buffer = if pre.is_some() { 0 } else { kcb * panels * nr };
    with_buffer(&PACKED_B, buffer, |buf| {
        let own = SendPtr(buf.as_mut_ptr());
        for pc in (0..k).step_by(kcb) {
            let kc = kcb.min(k - pc);
            let bp = match pre {
                Some(p) => SendPtr(p.get().add(pc * panels * nr)),
                None => own,
            };
            let pack_b = |j: usize| pack_b::<T>(b.get(), (brs, bcs), n, pc, kc, j, bp.get());
            let block = |i: usize| {
                let rows = (i * mc)..(m.min((i + 1) * mc));
                let load = accumulate || pc > 0;
                let dst = (c.get(), crs, ccs);
                block_product::<T>(a.get(), ars, rows, pc, kc, bp.get(), n, dst, alpha, load)
            };
            if pre.is_none() {
                if parallel {
                    (0..panels).into_par_iter().for_each(pack_b);
                } else {
                    (0..panels).for_each(pack_b);
                }
            }
            if parallel {
                (0..m.div_ceil(mc)).into_par_iter().for_each(block);
            } else {
                (0..m.div_ceil(mc)).for_each(block);
            }
        }
    })
}

/// Panel j of B's rows pc..pc + kc into bp: for each k, NR consecutive columns (0 past n).
unsafe fn pack_b<T: Tile>(
    b: *const f32,
    (brs, bcs): (usize, usize),
    n: usize,
    pc: usize,
    kc: usize,
    j: usize,
    bp: *mut f32,
) {
    let nr = T::NR;
    let dst = bp.add(j * kc * nr);
    let cols = nr.min(n - j * nr);
    if bcs == 1 {
        for p in 0..kc {
            let src = b.add((pc + p) * brs + j * nr);
            for jj in 0..nr {
                *dst.add(p * nr + jj) = if jj < cols { *src.add(jj) } else { 0.0 };
            }
        }
    } else {
        for jj in 0..nr {
            let col = j * nr + jj;
            for p in 0..kc {
                *dst.add(p * nr + jj) = if jj < cols {
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
unsafe fn block_product<T: Tile>(
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
    let (mr, nr) = (T::MR, T::NR);
    let tiles = rows.len().div_ceil(mr);
    with_buffer(&PACKED_A, tiles * mr * kc, |ap| {
        // Row tiles of A: for each k, mr consecutive rows (0 past the block).
        for t in 0..tiles {
            let dst = &mut ap[t * mr * kc..(t + 1) * mr * kc];
            for ii in 0..mr {
                let row = rows.start + t * mr + ii;
                if row < rows.end {
                    let src = std::slice::from_raw_parts(a.add(row * ars + pc), kc);
                    for (p, &v) in src.iter().enumerate() {
                        dst[p * mr + ii] = v;
                    }
                } else {
                    (0..kc).for_each(|p| dst[p * mr + ii] = 0.0);
                }
            }
        }
        let mut tile = [0f32; Avx512::MR * Avx512::NR];
        for j in 0..n.div_ceil(nr) {
            let bj = bp.add(j * kc * nr);
            let cols = nr.min(n - j * nr);
            for t in 0..tiles {
                let at = ap.as_ptr().add(t * mr * kc);
                let r0 = rows.start + t * mr;
                let n_rows = mr.min(rows.end - r0);
                let c0 = c.add(r0 * crs + j * nr * ccs);
                if n_rows == mr && cols == nr && ccs == 1 {
                    T::tile(kc, at, bj, c0, crs, alpha, load);
                } else {
                    T::tile(kc, at, bj, tile.as_mut_ptr(), nr, 1.0, false);
                    for i in 0..n_rows {
                        for jj in 0..cols {
                            let d = c0.add(i * crs + jj * ccs);
                            let v = alpha * tile[i * nr + jj];
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
    use super::Tile;
    use std::arch::x86_64::*;

    const MR: usize = super::Avx2::MR;
    const NR: usize = super::Avx2::NR;

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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Tile;
    use std::arch::x86_64::*;

    const MR: usize = super::Avx512::MR;
    const NR: usize = super::Avx512::NR;

    /// As the AVX2 tile, twice as wide and twice as tall: 24 accumulators, per k two loads of
    /// b, twelve broadcasts of a, 24 FMAs.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rs: usize,
        alpha: f32,
        load: bool,
    ) {
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * rs) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * rs + NR - 1) as *const i8);
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            let b0 = _mm512_loadu_ps(b);
            let b1 = _mm512_loadu_ps(b.add(16));
            for (i, r) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.add(i));
                r[0] = _mm512_fmadd_ps(x, b0, r[0]);
                r[1] = _mm512_fmadd_ps(x, b1, r[1]);
            }
            a = a.add(MR);
            b = b.add(NR);
        }
        let al = _mm512_set1_ps(alpha);
        for (i, r) in acc.iter().enumerate() {
            for (h, &v) in r.iter().enumerate() {
                let p = c.add(i * rs + 16 * h);
                let y = if load {
                    _mm512_fmadd_ps(v, al, _mm512_loadu_ps(p))
                } else {
                    _mm512_mul_ps(v, al)
                };
                _mm512_storeu_ps(p, y);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    pub unsafe fn tile(
        _: usize,
        _: *const f32,
        _: *const f32,
        _: *mut f32,
        _: usize,
        _: f32,
        _: bool,
    ) {
        unreachable!("`wide` is false without AVX-512")
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

    type SgemmFn = unsafe fn(SgemmArgs);

    /// Against the product in f64. Any order of k f32 multiply-adds is within
    /// gamma_k sum |a b| of the exact result (Higham, gamma_k = k u / (1 - k u), u = 2^-24);
    /// the alpha scaling and the add into c cost two more roundings of |c| + |alpha| sum |a b|.
    #[test]
    fn matches_the_exact_product_within_the_rounding_bound() {
        if !super::super::avx2_fma() {
            eprintln!("no AVX2 + FMA: sgemm is not used on this CPU");
            return;
        }
        let mut tiles: Vec<(&str, SgemmFn)> = vec![("avx2", sgemm_with::<Avx2>)];
        if super::super::isa::features().avx512 {
            tiles.push(("avx512", sgemm_with::<Avx512>));
        } else {
            eprintln!("skipped the AVX-512 tile: this CPU (or LMKIT_ISA) has no AVX-512");
        }
        let u = 1.0 / (1u64 << 24) as f64;
        // (m, n, k, B transposed (read as W^T), accumulate, alpha, c column stride)
        let cases = [
            (3072, 384, 384, true, false, 1.0, 1),
            (100, 70, 900, true, true, 0.5, 1),
            (97, 45, 800, false, false, 1.0, 1),
            (64, 33, 1000, false, true, -2.0, 2),
            // Fewer rows than a tile, and a few tiles: one sentence through a server.
            (1, 384, 384, true, false, 1.0, 1),
            (5, 40, 500, true, true, 1.0, 1),
            (13, 1536, 384, true, false, 1.0, 1),
        ];
        for (ci, &(m, n, k, bt, acc, alpha, ccs)) in cases.iter().enumerate() {
            assert!(takes(m, n, k, 1), "case {ci} is big enough");
            let a = values(m * k, 1 + ci as u64);
            let b = values(k * n, 11 + ci as u64);
            let (brs, bcs) = if bt { (1, k) } else { (n, 1) };
            let crs = n * ccs;
            let c0 = values(m * crs, 21 + ci as u64);
            let runs = tiles.iter().flat_map(|t| [(t, true), (t, false)]);
            for (&(tile, product), parallel) in runs {
                let mut c = c0.clone();
                // SAFETY: the buffers are m x k, k x n and m x (n * ccs) as the strides say.
                unsafe {
                    product((
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
                    ))
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
                            "{tile} case {ci} ({i}, {j}): {got} vs {want}, bound {bound}"
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
