//! bf16 linear layers for inference (`--precision bf16`): y = x W^T + b with W rounded to bf16
//! once, x rounded to bf16 as it arrives, and the products summed in f32.
//!
//! Why by hand: no crate packs weights for AVX512-BF16's `vdpbf16ps` or for AMX tiles (the
//! `gemm` crate's f16 path converts to f32 and multiplies in f32; candle's bf16 CPU matmul does
//! the same). `vdpbf16ps` does 32 multiply-adds per instruction where an f32 FMA does 16, and
//! one AMX `tdpbf16ps` does a 16 x 16 x 32 block (8192 multiply-adds).
//!
//! The kernels, chosen once per layer from the CPU ([`Kernel::best`], capped by `LMKIT_ISA`):
//! - `Amx`: AMX-BF16 tiles, 32 x 32 outputs per block (four accumulator tiles), where the CPU
//!   has AMX and the kernel grants the process the tile state (`arch_prctl`);
//! - `Avx512Bf16`: `vdpbf16ps`, 8 rows x 32 columns per tile;
//! - `Portable`: plain loops that do `vdpbf16ps`'s arithmetic step for step, so its results
//!   equal the AVX512-BF16 kernel's bit for bit (the tests check it). AMX sums each block of 32
//!   products in its own order, so its results match within the rounding bound, not bit for bit.
//!
//! The numbers: bf16 keeps f32's exponent and 8 of its 24 significand bits, so rounding x and W
//! costs a relative 2^-9 each (round to nearest even); the product of two bf16 numbers is exact
//! in f32, and the sums are f32 sums. Per element, |y - y_exact| <= ((1 + 2^-8)^2 (1 + 2^-24)^K
//! - 1) * sum_k |x_k| |w_k| (the tests check that bound against an f64 product).
//!
//! Weights are packed once, for every kernel alike: panels of 16 output columns; in a panel,
//! for each pair of consecutive k, the 16 columns' two values (64 bytes). That is the operand
//! `vdpbf16ps` multiplies against a broadcast pair of x, and an AMX B tile is 16 such rows.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;
use tracing::{span, Level, Span};

/// Output columns per packed panel (one 512-bit vector of f32).
const PANEL: usize = 16;
/// k per AMX tile row (64 bytes of bf16); the packed k is padded to a multiple of it.
const KB: usize = 32;
/// Rows per AVX512-BF16 tile.
const MR: usize = 8;
/// Rows per AMX block (two tiles of 16).
const AMX_ROWS: usize = 32;

/// The bf16 kernel a layer runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Portable,
    Avx512Bf16,
    Amx,
}

impl Kernel {
    /// The fastest kernel this CPU (and `LMKIT_ISA`) allows.
    pub fn best() -> Self {
        let f = super::isa::features();
        #[cfg(target_arch = "x86_64")]
        if f.amx_bf16 && amx::request_permission().is_ok() {
            return Self::Amx;
        }
        if f.avx512_bf16 {
            Self::Avx512Bf16
        } else {
            Self::Portable
        }
    }

    /// Whether this CPU (and `LMKIT_ISA`) can run the kernel.
    pub fn available(self) -> bool {
        let f = super::isa::features();
        match self {
            Self::Portable => true,
            Self::Avx512Bf16 => f.avx512_bf16,
            Self::Amx => f.amx_bf16,
        }
    }
}

/// f32 -> bf16, rounding to nearest even (as `vcvtneps2bf16`); NaN stays NaN.
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// bf16 -> f32 (exact).
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// A linear layer's weight rounded to bf16 and packed, with its bias in f32.
pub struct Bf16Linear {
    out: usize,
    inp: usize,
    /// `inp` rounded up to a multiple of [`KB`]; the padding is zeros.
    kp: usize,
    /// Panels of [`PANEL`] columns (the last padded with zero columns): see the module notes.
    packed: Vec<u16>,
    /// Per output column, padded to whole panels.
    bias: Vec<f32>,
    kernel: Kernel,
    span: Span,
}

impl std::fmt::Debug for Bf16Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bf16Linear({:?}, {} -> {})",
            self.kernel, self.inp, self.out
        )
    }
}

impl Bf16Linear {
    /// Rounds `weight` (out, in) to bf16 for the best kernel of this CPU; `bias` (out) stays f32.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Arc<Self>> {
        Self::for_kernel(weight, bias, Kernel::best())
    }

    /// As [`Self::new`], for a given kernel (tests and A/B runs).
    pub fn for_kernel(weight: &Tensor, bias: Option<&Tensor>, kernel: Kernel) -> Result<Arc<Self>> {
        if !kernel.available() {
            candle_core::bail!(
                "bf16 linear: this CPU (or LMKIT_ISA) cannot run the {kernel:?} kernel"
            )
        }
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
            candle_core::bail!("bf16 linear: bias of {} for {out} outputs", b.len())
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            candle_core::bail!(
                "bf16 linear: weight ({out}, {inp}) holds {} at row {}, column {}",
                w[i],
                i / inp,
                i % inp
            )
        }
        let kp = inp.div_ceil(KB) * KB;
        let panels = out.div_ceil(PANEL);
        let mut packed = vec![0u16; panels * PANEL * kp];
        for n in 0..out {
            let (panel, col) = (n / PANEL, n % PANEL);
            for k in 0..inp {
                packed[panel * PANEL * kp + (k / 2) * PANEL * 2 + col * 2 + k % 2] =
                    to_bf16(w[n * inp + k]);
            }
        }
        let mut bias = vec![0f32; panels * PANEL];
        bias[..out].copy_from_slice(&b);
        if kernel == Kernel::Amx {
            amx::request_permission()?;
        }
        Ok(Arc::new(Self {
            out,
            inp,
            kp,
            packed,
            bias,
            kernel,
            span: span!(Level::TRACE, "bf16.linear"),
        }))
    }

    /// Whether `forward` takes this input (f32 on the CPU, last dimension `in`).
    pub fn takes(&self, x: &Tensor) -> bool {
        super::takes_rows(x, self.inp)
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// y = x W^T + b over the last dimension of x.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let _g = self.span.enter();
        super::map_rows(x, self.inp, self.out, "bf16 linear", |xs| {
            self.run(xs, self.kernel)
        })
    }

    /// The product for x (rows x in, row-major) on `kernel`.
    fn run(&self, x: &[f32], kernel: Kernel) -> Vec<f32> {
        assert!(kernel.available(), "{kernel:?} is not available here");
        let rows = x.len() / self.inp.max(1);
        let cols = self.bias.len();
        if rows == 0 || self.out == 0 {
            return vec![];
        }
        // x in bf16, k padded with zeros: what every kernel reads. Written in full, row by
        // row, so neither buffer is zero-filled first (that was 13% of a bf16 inference).
        let (inp, kp) = (self.inp, self.kp);
        let mut xb: Vec<u16> = Vec::with_capacity(rows * kp);
        xb.spare_capacity_mut()[..rows * kp]
            .par_chunks_mut(kp)
            .zip(x.par_chunks(inp))
            .for_each(|(d, s)| {
                #[cfg(target_arch = "x86_64")]
                if kernel != Kernel::Portable {
                    // SAFETY: the SIMD kernels run only where AVX512-BF16 was detected.
                    unsafe { avx512::convert_row(s, d) };
                    return;
                }
                for (d, &v) in d.iter_mut().zip(s) {
                    d.write(to_bf16(v));
                }
                for d in &mut d[inp..] {
                    d.write(0);
                }
            });
        // SAFETY: every row was written in full just above.
        unsafe { xb.set_len(rows * kp) };
        let mut y: Vec<f32> = Vec::with_capacity(rows * cols);
        let block = match kernel {
            Kernel::Amx => AMX_ROWS,
            _ => MR * 8,
        };
        y.spare_capacity_mut()[..rows * cols]
            .par_chunks_mut(block * cols)
            .enumerate()
            .for_each(|(i, yb)| {
                let r0 = i * block;
                let n = yb.len() / cols;
                let a = &xb[r0 * kp..(r0 + n) * kp];
                let yp = yb.as_mut_ptr() as *mut f32;
                match kernel {
                    // SAFETY (all three): `yp` covers n x cols floats, which each kernel writes
                    // in full; `available` checked the instructions; `for_kernel` got the AMX
                    // tile permission.
                    Kernel::Portable => unsafe { self.block_portable(a, yp, n) },
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Avx512Bf16 => unsafe { avx512::block(self, a, yp, n) },
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Amx => unsafe { amx::block(self, a, yp, n) },
                    #[cfg(not(target_arch = "x86_64"))]
                    _ => unreachable!("only the portable kernel exists off x86-64"),
                }
                for row in yb.chunks_mut(cols) {
                    for (v, b) in row.iter_mut().zip(&self.bias) {
                        // SAFETY: the kernel wrote this element.
                        let w = unsafe { v.assume_init() };
                        v.write(w + b);
                    }
                }
            });
        // SAFETY: the kernels wrote every element of every block.
        unsafe { y.set_len(rows * cols) };
        if cols != self.out {
            let mut compact = Vec::with_capacity(rows * self.out);
            for row in y.chunks(cols) {
                compact.extend_from_slice(&row[..self.out]);
            }
            return compact;
        }
        y
    }

    /// `vdpbf16ps` step for step: per pair of k, acc = (acc + x1 w1) + x0 w0, in f32 with
    /// denormal inputs read as zero and denormal results flushed to zero.
    /// # Safety
    /// `y` must be valid for writes of `rows` x the padded column count.
    unsafe fn block_portable(&self, a: &[u16], y: *mut f32, rows: usize) {
        let cols = self.bias.len();
        let kp = self.kp;
        for r in 0..rows {
            let yr = std::slice::from_raw_parts_mut(y.add(r * cols), cols);
            let xr = &a[r * kp..(r + 1) * kp];
            for (p, panel) in self.packed.chunks(PANEL * kp).enumerate() {
                for c in 0..PANEL {
                    let mut acc = 0f32;
                    for q in 0..kp / 2 {
                        let w0 = daz(from_bf16(panel[q * PANEL * 2 + c * 2]));
                        let w1 = daz(from_bf16(panel[q * PANEL * 2 + c * 2 + 1]));
                        let (x0, x1) = (daz(from_bf16(xr[2 * q])), daz(from_bf16(xr[2 * q + 1])));
                        acc = ftz(acc + x1 * w1);
                        acc = ftz(acc + x0 * w0);
                    }
                    yr[p * PANEL + c] = acc;
                }
            }
        }
    }
}

fn daz(v: f32) -> f32 {
    if v.is_subnormal() {
        0.0f32.copysign(v)
    } else {
        v
    }
}

fn ftz(v: f32) -> f32 {
    daz(v)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Bf16Linear, MR, PANEL};
    use std::arch::x86_64::*;

    /// One row of x to bf16 (round to nearest even, `vcvtne2ps2bf16`), zeros past its end.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn convert_row(x: &[f32], d: &mut [std::mem::MaybeUninit<u16>]) {
        let n = x.len();
        let dp = d.as_mut_ptr() as *mut u16;
        let mut i = 0;
        while i + 32 <= n {
            let lo = _mm512_loadu_ps(x.as_ptr().add(i));
            let hi = _mm512_loadu_ps(x.as_ptr().add(i + 16));
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_si512(dp.add(i) as *mut _, v);
            i += 32;
        }
        for (j, &v) in x.iter().enumerate().skip(i) {
            *dp.add(j) = super::to_bf16(v);
        }
        for j in n..d.len() {
            *dp.add(j) = 0;
        }
    }

    /// A block of rows (a: rows x kp bf16) times every pair of panels: tiles of MR rows x 32
    /// columns, 16 accumulators, each k pair one broadcast of x and two `vdpbf16ps` per row.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn block(l: &Bf16Linear, a: &[u16], y: *mut f32, rows: usize) {
        let (kp, cols) = (l.kp, l.bias.len());
        let panels = cols / PANEL;
        let mut r0 = 0;
        while r0 < rows {
            let n = MR.min(rows - r0);
            let mut p = 0;
            while p < panels {
                let two = p + 1 < panels;
                let w0 = l.packed.as_ptr().add(p * PANEL * kp);
                let w1 = if two { w0.add(PANEL * kp) } else { w0 };
                let mut acc = [[_mm512_setzero_ps(); 2]; MR];
                let xa = a.as_ptr().add(r0 * kp) as *const u8;
                for q in 0..kp / 2 {
                    let b0: __m512bh =
                        std::mem::transmute(_mm512_loadu_si512(w0.add(q * PANEL * 2) as *const _));
                    let b1: __m512bh =
                        std::mem::transmute(_mm512_loadu_si512(w1.add(q * PANEL * 2) as *const _));
                    for (i, acc) in acc.iter_mut().enumerate().take(n) {
                        let pair = (xa.add((i * kp + 2 * q) * 2) as *const i32).read_unaligned();
                        let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                        acc[0] = _mm512_dpbf16_ps(acc[0], x, b0);
                        acc[1] = _mm512_dpbf16_ps(acc[1], x, b1);
                    }
                }
                for (i, acc) in acc.iter().enumerate().take(n) {
                    let d = y.add((r0 + i) * cols + p * PANEL);
                    _mm512_storeu_ps(d, acc[0]);
                    if two {
                        _mm512_storeu_ps(d.add(PANEL), acc[1]);
                    }
                }
                p += 2;
            }
            r0 += MR;
        }
    }
}

/// AMX: tiles are 16 rows of 64 bytes. C (f32) tiles are 16 x 16; A tiles 16 rows x 32 bf16
/// of x; B tiles 16 k pairs x 16 columns x 2 of the packed weights. Per block of 32 rows and
/// 32 columns: tmm0-3 accumulate C, tmm4-5 hold x, tmm6-7 the weights.
#[cfg(target_arch = "x86_64")]
mod amx {
    use super::{Bf16Linear, AMX_ROWS, KB, PANEL};
    use std::sync::OnceLock;

    /// Linux keeps the 8 KiB of AMX tile data out of a process's saved state until it asks:
    /// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`.
    pub(super) fn request_permission() -> candle_core::Result<()> {
        static GRANTED: OnceLock<bool> = OnceLock::new();
        let ok = *GRANTED.get_or_init(|| {
            extern "C" {
                fn syscall(n: i64, ...) -> i64;
            }
            const SYS_ARCH_PRCTL: i64 = 158;
            const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
            const XFEATURE_XTILEDATA: i64 = 18;
            // SAFETY: a plain system call that only changes this process's permissions.
            unsafe { syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
        });
        if ok {
            Ok(())
        } else {
            candle_core::bail!("the kernel did not grant AMX tile state (arch_prctl); set LMKIT_ISA=avx512 to use AVX-512 BF16")
        }
    }

    /// The 64-byte tile configuration: palette 1; tiles 0-3 (C) and 4-5 (A) with `rows0` /
    /// `rows1` rows, 6-7 (B) with 16; every row 64 bytes.
    fn config(rows0: usize, rows1: usize) -> [u8; 64] {
        let mut c = [0u8; 64];
        c[0] = 1;
        let rows = [rows0, rows1, rows0, rows1, rows0, rows1, 16, 16];
        for (t, &r) in rows.iter().enumerate() {
            c[16 + 2 * t] = 64; // bytes per row (little-endian u16)
            c[48 + t] = r as u8;
        }
        c
    }

    /// A block of at most 32 rows times every pair of panels.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block(l: &Bf16Linear, a: &[u16], y: *mut f32, rows: usize) {
        let (kp, cols) = (l.kp, l.bias.len());
        debug_assert!(rows <= AMX_ROWS);
        let (rows0, rows1) = (rows.min(16), rows.saturating_sub(16));
        // A tile with no rows is not allowed: a block of <= 16 rows uses tile 1 as a copy of 0.
        let r1 = if rows1 == 0 { rows0 } else { rows1 };
        let cfg = config(rows0, r1);
        let a0 = a.as_ptr() as *const u8;
        let a1 = if rows1 == 0 { a0 } else { a0.add(16 * kp * 2) };
        let (a_stride, b_stride, c_stride) = (kp * 2, 64usize, cols * 4);
        std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack));
        let panels = cols / PANEL;
        let mut p = 0;
        while p < panels {
            let two = p + 1 < panels;
            let w0 = l.packed.as_ptr().add(p * PANEL * kp) as *const u8;
            let w1 = if two { w0.add(PANEL * kp * 2) } else { w0 };
            std::arch::asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack)
            );
            for kb in 0..kp / KB {
                // x: 32 k (64 bytes) per row; weights: 16 pairs (16 rows of 64 bytes).
                let xa0 = a0.add(kb * KB * 2);
                let xa1 = a1.add(kb * KB * 2);
                let wb0 = w0.add(kb * (KB / 2) * 64);
                let wb1 = w1.add(kb * (KB / 2) * 64);
                std::arch::asm!(
                    "tileloadd tmm4, [{xa0} + {sa}*1]",
                    "tileloadd tmm5, [{xa1} + {sa}*1]",
                    "tileloadd tmm6, [{wb0} + {sb}*1]",
                    "tileloadd tmm7, [{wb1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm5, tmm6",
                    "tdpbf16ps tmm2, tmm4, tmm7",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    xa0 = in(reg) xa0, xa1 = in(reg) xa1, wb0 = in(reg) wb0, wb1 = in(reg) wb1,
                    sa = in(reg) a_stride, sb = in(reg) b_stride,
                    options(nostack)
                );
            }
            let y0 = y.add(p * PANEL) as *mut u8;
            std::arch::asm!("tilestored [{} + {}*1], tmm0", in(reg) y0, in(reg) c_stride, options(nostack));
            if rows1 > 0 {
                let y1 = y0.add(16 * c_stride);
                std::arch::asm!("tilestored [{} + {}*1], tmm1", in(reg) y1, in(reg) c_stride, options(nostack));
            }
            if two {
                let y2 = y0.add(PANEL * 4);
                std::arch::asm!("tilestored [{} + {}*1], tmm2", in(reg) y2, in(reg) c_stride, options(nostack));
                if rows1 > 0 {
                    let y3 = y2.add(16 * c_stride);
                    std::arch::asm!("tilestored [{} + {}*1], tmm3", in(reg) y3, in(reg) c_stride, options(nostack));
                }
            }
            p += 2;
        }
        std::arch::asm!("tilerelease", options(nostack));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn layer(
        out: usize,
        inp: usize,
        seed: u64,
        kernel: Kernel,
    ) -> (Vec<f32>, Vec<f32>, Arc<Bf16Linear>) {
        let w: Vec<f32> = crate::nn::kernels::test_uniform(out * inp, seed)
            .iter()
            .map(|v| v * 0.1)
            .collect();
        let b: Vec<f32> = crate::nn::kernels::test_uniform(out, seed + 1);
        let l = Bf16Linear::for_kernel(
            &Tensor::from_vec(w.clone(), (out, inp), &Device::Cpu).unwrap(),
            Some(&Tensor::from_vec(b.clone(), out, &Device::Cpu).unwrap()),
            kernel,
        )
        .unwrap();
        (w, b, l)
    }

    /// The derived bound of the module notes, per element, against an f64 product of the
    /// original (unrounded) values.
    fn check_bound(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        y: &[f32],
        rows: usize,
        inp: usize,
        out: usize,
    ) {
        let ub = 2f64.powi(-8);
        let k_growth = (1.0 + 2f64.powi(-24)).powi(inp as i32 + 1);
        let rel = (1.0 + ub).powi(2) * k_growth - 1.0;
        for r in 0..rows {
            for n in 0..out {
                let (mut exact, mut mag) = (b[n] as f64, 0f64);
                for k in 0..inp {
                    let p = x[r * inp + k] as f64 * w[n * inp + k] as f64;
                    exact += p;
                    mag += p.abs();
                }
                // The bias is added in f32 once: one more rounding of the result.
                let bound = rel * mag + (exact.abs() + mag) * 2f64.powi(-24);
                let got = y[r * out + n] as f64;
                assert!(
                    (got - exact).abs() <= bound,
                    "row {r} col {n}: {got} vs {exact} (bound {bound})"
                );
            }
        }
    }

    /// Every kernel this CPU has, over sizes with ragged rows, columns and k.
    #[test]
    fn every_kernel_is_within_the_rounding_bound() {
        let mut ran = vec![];
        for kernel in [Kernel::Portable, Kernel::Avx512Bf16, Kernel::Amx] {
            if !kernel.available() {
                println!("skipped {kernel:?}: this CPU (or LMKIT_ISA) lacks it");
                continue;
            }
            ran.push(kernel);
            for (rows, inp, out) in [
                (1, 1, 1),
                (7, 33, 17),
                (33, 384, 48),
                (50, 70, 40),
                (64, 96, 1536),
            ] {
                let (w, b, l) = layer(out, inp, rows as u64 + 3, kernel);
                let x: Vec<f32> = crate::nn::kernels::test_uniform(rows * inp, 7 + out as u64);
                let y = l.run(&x, kernel);
                assert_eq!(y.len(), rows * out);
                check_bound(&x, &w, &b, &y, rows, inp, out);
            }
        }
        println!("bf16 kernels checked: {ran:?}");
    }

    /// The portable loops do `vdpbf16ps`'s arithmetic: equal bit for bit.
    #[test]
    fn the_portable_mirror_equals_avx512_bf16_bit_for_bit() {
        if !Kernel::Avx512Bf16.available() {
            println!("skipped: this CPU (or LMKIT_ISA) lacks AVX512-BF16");
            return;
        }
        for (rows, inp, out) in [(9, 70, 40), (20, 384, 64)] {
            let (_, _, l) = layer(out, inp, 11, Kernel::Avx512Bf16);
            let x: Vec<f32> = crate::nn::kernels::test_uniform(rows * inp, 5);
            let fast = l.run(&x, Kernel::Avx512Bf16);
            let mirror = l.run(&x, Kernel::Portable);
            let same = fast
                .iter()
                .zip(&mirror)
                .filter(|(a, b)| a.to_bits() == b.to_bits())
                .count();
            assert_eq!(same, fast.len(), "{same} of {} equal", fast.len());
        }
    }

    #[test]
    fn rounding_to_bf16_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between two bf16 numbers: to the even one, 1.0.
        assert_eq!(to_bf16(1.0 + 2f32.powi(-8)), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
    }

    #[test]
    fn a_tensor_goes_through_forward_with_its_shape() {
        let (_, _, l) = layer(24, 40, 1, Kernel::best());
        let x = Tensor::from_vec(
            crate::nn::kernels::test_uniform(2 * 3 * 40, 9),
            (2, 3, 40),
            &Device::Cpu,
        )
        .unwrap();
        let y = l.forward(&x).unwrap();
        assert_eq!(y.dims(), &[2, 3, 24]);
        assert!(l.forward(&x.to_dtype(DType::F64).unwrap()).is_err());
    }
}
