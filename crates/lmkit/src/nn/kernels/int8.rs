//! int8 linear layers for inference (`--int8`): y = x W^T + b with W quantized once per output
//! channel and x quantized per row as it arrives, the products summed exactly in i32.
//!
//! Why by hand: an fp32 gemm on AVX2 does at most 16 multiply-adds per cycle per core, and the
//! `gemm` crate reaches 45-60% of that on this model's shapes. AVX2's `vpmaddubsw` does 32 u8 x
//! i8 multiply-adds per instruction; with the `vpmaddwd` that widens its sums, measured 1.8x the
//! fp32 FMA peak on an AVX2 EPYC. AVX512-VNNI's `vpdpbusd` does the multiply, the widening and
//! the accumulation in one instruction. No crate packs weights for these (candle's quantized
//! matmul is GGML's block formats for LLM decoding).
//!
//! The kernels, chosen once per layer from the CPU ([`Kernel::best`], capped by `LMKIT_ISA`):
//! - `Vnni`: `vpdpbusd`, 8-bit weights;
//! - `Avx2`: `vpmaddubsw` + `vpmaddwd`, 7-bit weights (below);
//! - `Portable`: plain integer loops, 8-bit weights; it also runs any layer's weights
//!   bit-identically to the SIMD kernel they were packed for, which the tests check.
//!
//! The numbers:
//! - weights: symmetric per output row, w ~ s_w * q with q in [-127, 127], or [-63, 63] for
//!   the AVX2 kernel: `vpmaddubsw` adds two u8 x i8 products into a saturating i16, and
//!   2 * 255 * 63 = 32130 fits where 2 * 255 * 127 would not (PyTorch's fbgemm qconfigs narrow
//!   the activations to 7 bits instead, `reduce_range`, for the same reason). `vpdpbusd` sums
//!   into i32 and takes all eight bits.
//! - activations: asymmetric per row (token), x ~ s_x * (q - z) with q in [0, 255] covering the
//!   row's [min(min, 0), max(max, 0)], so a row of GELU outputs keeps all eight bits.
//! - y[m][n] = s_x[m] * (s_w[n] * acc[m][n] - z[m] * s_w[n] * sum_k q_w[n][k]) + b[n], with
//!   acc = sum_k q_x[m][k] * q_w[n][k] exact in i32.
//!
//! Per element the error is at most |x| s_w / 2 + (|w| + s_w / 2) s_x (see the tests). The
//! fine-tuned emotion model keeps its accuracy (README, "Performance").
//!
//! Every path computes bit-identical results for the same packed weights (the same integer sums,
//! the same fused multiply-adds).

use std::mem::MaybeUninit;
use std::sync::Arc;

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;
use tracing::{span, Level, Span};

/// Rows of x per tile.
const MR: usize = 6;
/// Output columns per tile: two vectors of eight i32.
const NR: usize = 16;
/// Row tiles per block of rows quantized together.
const BLOCK_TILES: usize = 16;
/// The integer kernel a layer's weights are packed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Portable,
    Avx2,
    Vnni,
}

impl Kernel {
    /// The fastest kernel this CPU (and `LMKIT_ISA`) allows.
    pub fn best() -> Self {
        let f = super::isa::features();
        if f.avx512_vnni {
            Self::Vnni
        } else if f.avx2_fma {
            Self::Avx2
        } else {
            Self::Portable
        }
    }

    /// Largest |q| of a weight (see the module notes).
    fn w_max(self) -> f32 {
        match self {
            Self::Avx2 => 63.0,
            Self::Portable | Self::Vnni => 127.0,
        }
    }

    /// Whether the AVX2 helpers (row min/max, quantization) run: every SIMD kernel's CPU has AVX2.
    fn simd(self) -> bool {
        self != Self::Portable
    }
}

/// A linear layer's weight and bias, quantized and packed for the kernel.
pub struct QuantizedLinear {
    out: usize,
    inp: usize,
    /// `inp` rounded up to a multiple of 4: one i32 lane holds 4 consecutive k of a column.
    kp: usize,
    /// Panels of NR output columns; in each, for every 4 consecutive k, NR columns x 4 bytes.
    packed: Vec<i8>,
    /// The kernel the weights were quantized for (it sets their range).
    kernel: Kernel,
    /// Per output column (padded to a whole panel): s_w, s_w * sum_k q_w, bias.
    scale: Vec<f32>,
    zero_term: Vec<f32>,
    bias: Vec<f32>,
    span: Span,
}

impl std::fmt::Debug for QuantizedLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuantizedLinear(int8, {} -> {})", self.inp, self.out)
    }
}

impl QuantizedLinear {
    /// Quantizes `weight` (out, in) for the best kernel of this CPU and keeps `bias` (out) in f32.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Arc<Self>> {
        Self::for_kernel(weight, bias, Kernel::best())
    }

    /// As [`Self::new`], for a given kernel (tests and A/B runs).
    pub fn for_kernel(weight: &Tensor, bias: Option<&Tensor>, kernel: Kernel) -> Result<Arc<Self>> {
        let (out, inp) = weight.dims2()?;
        let w = weight
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let b = match bias {
            Some(b) => b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
            None => vec![0.0; out],
        };
        if b.len() != out {
            candle_core::bail!("int8 linear: bias of {} for {out} outputs", b.len())
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            candle_core::bail!(
                "int8 linear: weight ({out}, {inp}) holds {} at row {}, column {}",
                w[i],
                i / inp,
                i % inp
            )
        }
        let kp = inp.div_ceil(4) * 4;
        let cols = out.div_ceil(NR) * NR;
        let mut packed = vec![0i8; cols * kp];
        let (mut scale, mut zero_term, mut bias) =
            (vec![0f32; cols], vec![0f32; cols], vec![0f32; cols]);
        for n in 0..out {
            let row = &w[n * inp..(n + 1) * inp];
            let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let w_max = kernel.w_max();
            let s = if amax > 0.0 { amax / w_max } else { 1.0 };
            let (panel, col) = (n / NR, n % NR);
            let mut sum = 0i32;
            for (k, &v) in row.iter().enumerate() {
                let q = (v / s).round_ties_even().clamp(-w_max, w_max) as i8;
                sum += q as i32;
                packed[panel * NR * kp + (k / 4) * NR * 4 + col * 4 + k % 4] = q;
            }
            scale[n] = s;
            zero_term[n] = s * sum as f32;
            bias[n] = b[n];
        }
        Ok(Arc::new(Self {
            out,
            inp,
            kp,
            packed,
            kernel,
            scale,
            zero_term,
            bias,
            span: span!(Level::TRACE, "int8.linear"),
        }))
    }

    /// Whether `forward` takes this input (f32 on the CPU, last dimension `in`).
    pub fn takes(&self, x: &Tensor) -> bool {
        super::takes_rows(x, self.inp)
    }

    /// y = x W^T + b over the last dimension of x.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let _g = self.span.enter();
        super::map_rows(x, self.inp, self.out, "int8 linear", |xs| {
            self.run(xs, self.kernel)
        })
    }

    /// The kernel these weights run on by default.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The product for x (rows x in, row-major) on `kernel`: the one the weights were packed
    /// for, or the portable mirror of it.
    fn run(&self, x: &[f32], kernel: Kernel) -> Vec<f32> {
        assert!(
            kernel == self.kernel || kernel == Kernel::Portable,
            "weights packed for {:?} run on {kernel:?}",
            self.kernel
        );
        let rows = x.len() / self.inp.max(1);
        // Not zero-filled first (that was 7% of an int8 inference): the tiles write all of it.
        let mut y: Vec<f32> = Vec::with_capacity(rows * self.out);
        if rows == 0 || self.out == 0 {
            return y;
        }
        let threads = rayon::current_num_threads().max(1);
        // Row blocks: at least one per thread, at most BLOCK_TILES * MR = 96 rows (96 x 1536
        // bytes of packed x stay in L2 while every weight panel passes by).
        let block = rows.div_ceil(threads).div_ceil(MR).clamp(1, BLOCK_TILES) * MR;
        let body = |(i, y): (usize, &mut [MaybeUninit<f32>])| {
            let r0 = i * block;
            self.block(
                &x[r0 * self.inp..(r0 + y.len() / self.out) * self.inp],
                y,
                kernel,
            )
        };
        let spare = &mut y.spare_capacity_mut()[..rows * self.out];
        if rows > block {
            spare
                .par_chunks_mut(block * self.out)
                .enumerate()
                .for_each(body);
        } else {
            body((0, spare));
        }
        // SAFETY: `block` wrote every element of every row block (all tiles, all panels).
        unsafe { y.set_len(rows * self.out) };
        y
    }

    /// One block of rows: quantize and pack them, then run every (row tile, column panel).
    fn block(&self, x: &[f32], y: &mut [MaybeUninit<f32>], kernel: Kernel) {
        let tiles = (x.len() / self.inp).div_ceil(MR);
        let kp = self.kp;
        // Packed x: per tile, for every 4 consecutive k, MR rows x 4 bytes. A buffer per
        // thread, reused: zero-filling a fresh one was ~2.5% of an int8 inference. Stale bytes
        // are harmless: k past `inp` meets zero weights, rows past `rows` are not written out.
        thread_local! {
            static PACKED_X: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        PACKED_X.with_borrow_mut(|xq| {
            if xq.len() < tiles * MR * kp {
                xq.resize(tiles * MR * kp, 0);
            }
            self.block_packed(x, y, &mut xq[..tiles * MR * kp], kernel)
        })
    }

    fn block_packed(&self, x: &[f32], y: &mut [MaybeUninit<f32>], xq: &mut [u8], kernel: Kernel) {
        let simd = kernel.simd();
        let (inp, kp, out) = (self.inp, self.kp, self.out);
        let rows = x.len() / inp;
        let tiles = rows.div_ceil(MR);
        let mut sx = [0f32; BLOCK_TILES * MR];
        let mut zx = [0f32; BLOCK_TILES * MR];
        for r in 0..rows {
            let row = &x[r * inp..(r + 1) * inp];
            let (s, z) = row_params(row, simd);
            (sx[r], zx[r]) = (s, z);
            let dst = &mut xq[(r / MR) * MR * kp + (r % MR) * 4..];
            quantize_row(row, 1.0 / s, z, dst, simd);
        }
        let mut tile = [0f32; MR * NR];
        for p in 0..out.div_ceil(NR) {
            let w = &self.packed[p * NR * kp..(p + 1) * NR * kp];
            let c0 = p * NR;
            let cols = NR.min(out - c0);
            let col = |v: &[f32]| -> [f32; NR] { v[c0..c0 + NR].try_into().expect("padded") };
            let (sw, zt, bias) = (col(&self.scale), col(&self.zero_term), col(&self.bias));
            for t in 0..tiles {
                let r0 = t * MR;
                let n_rows = MR.min(rows - r0);
                let a = &xq[t * MR * kp..(t + 1) * MR * kp];
                let row = |v: &[f32]| -> [f32; MR] { v[r0..r0 + MR].try_into().expect("MR rows") };
                let (sx, zx) = (row(&sx), row(&zx));
                let scales = TileScales {
                    sx: &sx,
                    zx: &zx,
                    sw: &sw,
                    zt: &zt,
                    bias: &bias,
                };
                tile_product(a, w, kp / 4, &scales, &mut tile, kernel);
                for i in 0..n_rows {
                    let d = (r0 + i) * out + c0;
                    y[d..d + cols].write_copy_of_slice(&tile[i * NR..i * NR + cols]);
                }
            }
        }
    }
}

/// A row's scale and zero point. A row holding NaN or infinity gets a NaN scale, so its
/// outputs are NaN as in fp32 instead of quietly finite.
fn row_params(row: &[f32], simd: bool) -> (f32, f32) {
    let (lo, hi) = min_max(row, simd);
    if !(lo.is_finite() && hi.is_finite()) {
        return (f32::NAN, 0.0);
    }
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    if hi == lo {
        return (1.0, 0.0);
    }
    let s = (hi - lo) / 255.0;
    (s, (-lo / s).round_ties_even().clamp(0.0, 255.0))
}

/// min and max of a row; NaN when it holds one.
fn min_max(row: &[f32], simd: bool) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only true where AVX2 and FMA were detected.
        return unsafe { avx2::min_max(row) };
    }
    let _ = simd;
    if row.iter().any(|v| v.is_nan()) {
        return (f32::NAN, f32::NAN);
    }
    row.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        })
}

/// q = clamp(round(x / s + z), 0, 255) of each element, element k written at byte
/// (k / 4) * 4 * MR + k % 4 of `dst` (the row's slot in its packed tile).
fn quantize_row(row: &[f32], inv: f32, z: f32, dst: &mut [u8], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: AVX2 was detected; dst covers (len / 4) * 4 * MR bytes past each written slot
        // (the tile holds kp / 4 groups of 4 * MR bytes).
        return unsafe { avx2::quantize_row(row, inv, z, dst) };
    }
    let _ = simd;
    for (k, &v) in row.iter().enumerate() {
        dst[(k / 4) * 4 * MR + k % 4] = quantize(v, inv, z);
    }
}

fn quantize(v: f32, inv: f32, z: f32) -> u8 {
    // NaN becomes 0, as in the AVX2 code (NaN rows are made NaN by their scale).
    v.mul_add(inv, z).clamp(0.0, 255.0).round_ties_even() as u8
}

/// What turns a tile's i32 sums back into f32: per row of x its scale and zero point, per
/// output column the weight scale, the zero-point term and the bias.
struct TileScales<'a> {
    sx: &'a [f32; MR],
    zx: &'a [f32; MR],
    sw: &'a [f32; NR],
    zt: &'a [f32; NR],
    bias: &'a [f32; NR],
}

/// One MR x NR tile of y: the i32 products of packed x rows and a weight panel over `quads` x 4
/// k, dequantized into `tile`.
fn tile_product(
    a: &[u8],
    w: &[i8],
    quads: usize,
    s: &TileScales,
    tile: &mut [f32; MR * NR],
    kernel: Kernel,
) {
    assert!(a.len() >= quads * 4 * MR && w.len() >= quads * 4 * NR);
    #[cfg(target_arch = "x86_64")]
    match kernel {
        // SAFETY: `Kernel::best` chose these only where the CPU has them; the slices' lengths
        // were checked above.
        Kernel::Avx2 => return unsafe { avx2::tile_product(a, w, quads, s, tile) },
        Kernel::Vnni => return unsafe { avx2::tile_product_vnni(a, w, quads, s, tile) },
        Kernel::Portable => {}
    }
    let mut acc = [[0i32; NR]; MR];
    for q in 0..quads {
        for (i, row) in acc.iter_mut().enumerate() {
            let x = &a[q * 4 * MR + i * 4..][..4];
            for (j, v) in row.iter_mut().enumerate() {
                let wq = &w[q * 4 * NR + j * 4..][..4];
                *v += (0..4).map(|t| x[t] as i32 * wq[t] as i32).sum::<i32>();
            }
        }
    }
    for i in 0..MR {
        for j in 0..NR {
            tile[i * NR + j] = dequantize(acc[i][j], s.sx[i], s.zx[i], s.sw[j], s.zt[j], s.bias[j]);
        }
    }
}

/// s_x * (acc * s_w - z * zero_term) + b, as the AVX2 code rounds it (two fused steps).
fn dequantize(acc: i32, sx: f32, zx: f32, sw: f32, zt: f32, b: f32) -> f32 {
    sx.mul_add((-zx).mul_add(zt, acc as f32 * sw), b)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{TileScales, MR, NR};
    use std::arch::x86_64::*;

    /// The k loop both integer tiles share: 12 i32 accumulators (6 rows x 2 vectors of 8
    /// columns); per 4 k, two weight loads and six 4-byte broadcasts of x, and each
    /// accumulator advanced by `step(acc, x, w)`. A macro, so each kernel's instructions are
    /// compiled inside its own `target_feature` function.
    macro_rules! k_loop {
        ($a:expr, $w:expr, $quads:expr, |$c:ident, $x:ident, $wv:ident| $step:expr) => {{
            let mut acc = [[_mm256_setzero_si256(); 2]; MR];
            let (mut pa, mut pw) = ($a.as_ptr(), $w.as_ptr());
            for _ in 0..$quads {
                let w0 = _mm256_loadu_si256(pw as *const __m256i);
                let w1 = _mm256_loadu_si256(pw.add(32) as *const __m256i);
                for (i, c) in acc.iter_mut().enumerate() {
                    let $x = _mm256_set1_epi32((pa.add(4 * i) as *const i32).read_unaligned());
                    for (cv, $wv) in c.iter_mut().zip([w0, w1]) {
                        let $c = *cv;
                        *cv = $step;
                    }
                }
                pa = pa.add(4 * MR);
                pw = pw.add(4 * NR);
            }
            acc
        }};
    }

    /// (min, max) of the row, (NaN, NaN) if it holds a NaN.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn min_max(row: &[f32]) -> (f32, f32) {
        let mut lo = _mm256_set1_ps(f32::INFINITY);
        let mut hi = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut nan = _mm256_setzero_ps();
        let chunks = row.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            let v = _mm256_loadu_ps(c.as_ptr());
            lo = _mm256_min_ps(lo, v);
            hi = _mm256_max_ps(hi, v);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        }
        let (mut l, mut h) = ([0f32; 8], [0f32; 8]);
        _mm256_storeu_ps(l.as_mut_ptr(), lo);
        _mm256_storeu_ps(h.as_mut_ptr(), hi);
        if _mm256_movemask_ps(nan) != 0 || rest.iter().any(|v| v.is_nan()) {
            return (f32::NAN, f32::NAN);
        }
        let lo = l.iter().chain(rest).fold(f32::INFINITY, |m, &v| m.min(v));
        let hi = h
            .iter()
            .chain(rest)
            .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        (lo, hi)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn quantize_row(row: &[f32], inv: f32, z: f32, dst: &mut [u8]) {
        let (vi, vz) = (_mm256_set1_ps(inv), _mm256_set1_ps(z));
        let (zero, top) = (_mm256_setzero_ps(), _mm256_set1_ps(255.0));
        // The low byte of each i32, gathered into the first 4 bytes of each 128-bit half.
        let pick = _mm256_setr_epi8(
            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, //
            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        );
        let whole = row.len() / 8 * 8;
        for k in (0..whole).step_by(8) {
            let v = _mm256_fmadd_ps(_mm256_loadu_ps(row.as_ptr().add(k)), vi, vz);
            let v = _mm256_min_ps(_mm256_max_ps(v, zero), top);
            // Rounds to nearest even (the default MXCSR mode), as `round_ties_even`.
            let b = _mm256_shuffle_epi8(_mm256_cvtps_epi32(v), pick);
            let lo = (_mm256_extract_epi32::<0>(b) as u32).to_le_bytes();
            let hi = (_mm256_extract_epi32::<4>(b) as u32).to_le_bytes();
            dst[(k / 4) * 4 * MR..][..4].copy_from_slice(&lo);
            dst[(k / 4 + 1) * 4 * MR..][..4].copy_from_slice(&hi);
        }
        for (k, &v) in row.iter().enumerate().skip(whole) {
            dst[(k / 4) * 4 * MR + k % 4] = super::quantize(v, inv, z);
        }
    }

    /// 12 i32 accumulators (6 rows x 2 vectors); per 4 k: two weight loads, six 4-byte
    /// broadcasts of x, and per accumulator `vpmaddubsw` (u8 x i8 pairs -> i16), `vpmaddwd`
    /// by 1 (i16 pairs -> i32), add.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_product(
        a: &[u8],
        w: &[i8],
        quads: usize,
        s: &TileScales,
        tile: &mut [f32; MR * NR],
    ) {
        let one = _mm256_set1_epi16(1);
        let acc = k_loop!(a, w, quads, |c, x, wv| _mm256_add_epi32(
            c,
            _mm256_madd_epi16(_mm256_maddubs_epi16(x, wv), one)
        ));
        dequantize_tile(&acc, s, tile)
    }

    /// The same tile with AVX512-VNNI: per accumulator one `vpdpbusd` (u8 x i8, four products
    /// summed straight into i32, no i16 step to saturate).
    #[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
    pub unsafe fn tile_product_vnni(
        a: &[u8],
        w: &[i8],
        quads: usize,
        s: &TileScales,
        tile: &mut [f32; MR * NR],
    ) {
        let acc = k_loop!(a, w, quads, |c, x, wv| _mm256_dpbusd_epi32(c, x, wv));
        dequantize_tile(&acc, s, tile)
    }

    /// s_x * (acc * s_w - z * zero_term) + b for each i32 sum, into `tile`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dequantize_tile(acc: &[[__m256i; 2]; MR], s: &TileScales, tile: &mut [f32; MR * NR]) {
        let load = |v: &[f32; NR], h: usize| _mm256_loadu_ps(v.as_ptr().add(8 * h));
        for (i, c) in acc.iter().enumerate() {
            let (sx, zx) = (_mm256_set1_ps(s.sx[i]), _mm256_set1_ps(s.zx[i]));
            for (h, &v) in c.iter().enumerate() {
                let t = _mm256_mul_ps(_mm256_cvtepi32_ps(v), load(s.sw, h));
                let y =
                    _mm256_fmadd_ps(sx, _mm256_fnmadd_ps(zx, load(s.zt, h), t), load(s.bias, h));
                _mm256_storeu_ps(tile.as_mut_ptr().add(i * NR + 8 * h), y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Deterministic values in [-scale, scale) with some outliers, as activations have.
    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let outlier = |i: usize| if i % 97 == 5 { 8.0 } else { 1.0 };
        let u = crate::nn::kernels::test_uniform(n, seed);
        u.iter()
            .enumerate()
            .map(|(i, v)| v * scale * outlier(i))
            .collect()
    }

    fn layer(
        out: usize,
        inp: usize,
        seed: u64,
        kernel: Kernel,
    ) -> (Vec<f32>, Vec<f32>, Arc<QuantizedLinear>) {
        let w = values(out * inp, seed, 0.1);
        let b = values(out, seed + 1, 0.5);
        let q = QuantizedLinear::for_kernel(
            &Tensor::from_vec(w.clone(), (out, inp), &Device::Cpu).unwrap(),
            Some(&Tensor::from_vec(b.clone(), out, &Device::Cpu).unwrap()),
            kernel,
        )
        .unwrap();
        (w, b, q)
    }

    /// The kernels this CPU runs, the portable one first; the others are named as skipped.
    fn kernels() -> Vec<Kernel> {
        let f = crate::nn::kernels::isa::features();
        let mut k = vec![Kernel::Portable];
        for (kernel, has, what) in [
            (Kernel::Avx2, f.avx2_fma, "AVX2 + FMA"),
            (Kernel::Vnni, f.avx512_vnni, "AVX512-VNNI"),
        ] {
            if has {
                k.push(kernel);
            } else {
                eprintln!("skipped the {kernel:?} kernel: this CPU (or LMKIT_ISA) has no {what}");
            }
        }
        k
    }

    const SHAPES: [(usize, usize, usize); 4] =
        [(1, 1, 1), (37, 45, 29), (100, 384, 64), (13, 7, 16)];

    #[test]
    fn simd_and_portable_paths_agree_bit_for_bit() {
        for kernel in kernels().into_iter().skip(1) {
            for (i, &(rows, inp, out)) in SHAPES.iter().enumerate() {
                let (_, _, q) = layer(out, inp, 10 + i as u64, kernel);
                let x = values(rows * inp, 20 + i as u64, 2.0);
                let (a, b) = (q.run(&x, kernel), q.run(&x, Kernel::Portable));
                assert_eq!(a.len(), rows * out);
                for (j, (u, v)) in a.iter().zip(&b).enumerate() {
                    assert_eq!(
                        u.to_bits(),
                        v.to_bits(),
                        "{kernel:?} {rows}x{inp}x{out}, output {j}"
                    );
                }
            }
        }
    }

    /// Each output is within the quantization error bound of the exact product. Per term,
    /// |x w - x^ w^| <= |x| |w - w^| + |w^| |x - x^| <= |x| s_w / 2 + (|w| + s_w / 2) s_x / 2:
    /// no weight clips, and x / s_x + z lies in [-0.5, 255.5] (z is rounded), so clamping to
    /// [0, 255] moves it at most the half step rounding does. On top, f32 rounding: the
    /// zero-point term cancels against acc * s_w, both up to (hi - lo) (|w| + s_w) per term, and
    /// the conversions, products and sums add a few units of u = 2^-24 of that (8u taken).
    const U8: f64 = 8.0 / (1u64 << 24) as f64;

    #[test]
    fn error_stays_within_the_quantization_bound() {
        for kernel in kernels() {
            for (i, &(rows, inp, out)) in SHAPES.iter().enumerate() {
                let (w, b, q) = layer(out, inp, 30 + i as u64, kernel);
                let x = values(rows * inp, 40 + i as u64, 3.0);
                let y = q.run(&x, kernel);
                for r in 0..rows {
                    let xr = &x[r * inp..(r + 1) * inp];
                    let (lo, hi) = xr
                        .iter()
                        .fold((0f32, 0f32), |(a, c), &v| (a.min(v), c.max(v)));
                    let (range, sx) = ((hi - lo) as f64, (hi - lo) as f64 / 255.0);
                    for n in 0..out {
                        let wr = &w[n * inp..(n + 1) * inp];
                        let sw = wr.iter().fold(0f32, |m, v| m.max(v.abs())) as f64
                            / kernel.w_max() as f64;
                        let (mut exact, mut bound) = (b[n] as f64, 0.0);
                        for (&xv, &wv) in xr.iter().zip(wr) {
                            let (xv, wv) = (xv as f64, wv as f64);
                            exact += xv * wv;
                            bound += xv.abs() * sw / 2.0 + (wv.abs() + sw / 2.0) * sx / 2.0;
                            bound += U8 * (xv.abs() + range) * (wv.abs() + sw);
                        }
                        let got = y[r * out + n] as f64;
                        assert!(
                            (got - exact).abs() <= bound + U8 * b[n].abs() as f64,
                            "{kernel:?} {rows}x{inp}x{out} row {r} col {n}: {got} vs {exact}, bound {bound}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn zero_rows_give_the_bias_and_nan_rows_give_nan() {
        let mut x = vec![0f32; 3 * 9];
        x[9 + 4] = f32::NAN;
        x[18 + 2] = f32::INFINITY;
        for kernel in kernels() {
            let (_, b, q) = layer(20, 9, 7, kernel);
            let y = q.run(&x, kernel);
            assert_eq!(&y[..20], &b[..], "a zero row is the bias exactly");
            assert!(
                y[20..].iter().all(|v| v.is_nan()),
                "NaN/inf rows: {:?}",
                &y[20..]
            );
        }
    }

    #[test]
    fn forward_keeps_leading_dimensions_and_checks_its_input() -> Result<()> {
        let (_, _, q) = layer(8, 12, 3, Kernel::best());
        let x = Tensor::from_vec(values(2 * 5 * 12, 9, 1.0), (2, 5, 12), &Device::Cpu)?;
        assert_eq!(q.forward(&x)?.dims(), &[2, 5, 8]);
        let err = q.forward(&x.narrow(2, 0, 11)?).unwrap_err().to_string();
        assert!(err.contains("last dimension 12"), "{err}");
        let bad = Tensor::from_vec(vec![1f32, f32::NAN], (1, 2), &Device::Cpu)?;
        let err = QuantizedLinear::new(&bad, None).unwrap_err().to_string();
        assert!(err.contains("row 0, column 1"), "{err}");
        Ok(())
    }
}
