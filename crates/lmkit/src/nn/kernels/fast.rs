//! exp and erf written branch-free so the loops around them vectorise (libm's are scalar
//! calls: 14% of an inference profile went to `erff`), compiled twice: for AVX2 + FMA, picked at
//! run time, and for the baseline.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1 / sqrt(2 pi)
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// e^x within ~2 ulp (Cephes `expf`: x = n ln2 + r, |r| <= ln2 / 2, degree-6 polynomial),
/// 0 below -87.34 (where f32 goes subnormal), +inf above 88.37 (callers pass x <= 0).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(-87.336_55, 88.376_26);
    // Round to nearest by the 1.5 * 2^23 trick (exact for |n| < 2^22): t's low mantissa
    // bits then hold 0x40_0000 + n, which gives 2^n by integer ops (an `as i32` cast is
    // saturating, and its checks kept the loops around exp scalar).
    let t = xc * LOG2E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let y = y * f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23);
    if x < -87.336_55 {
        0.0
    } else if x > 88.376_26 {
        f32::INFINITY
    } else {
        y
    }
}

/// erf(x), Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), the formula of PyTorch's
/// vectorised CPU `erf`.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    erf_and_exp(x).0
}

/// (erf(x), exp(-x^2)): the formula's exp, which GELU's derivative reuses as phi's.
#[inline(always)]
fn erf_and_exp(x: f32) -> (f32, f32) {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_72 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    let e = exp(-a * a);
    ((1.0 - poly * e).copysign(x), e)
}

#[inline(always)]
fn gelu_generic(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
    }
}

/// GELU and its derivative in one pass: erf's exp(-x^2 / 2) is also phi(x)'s, so one exp
/// gives both (the forward and the backward pass each took their own, three in all).
#[inline(always)]
fn gelu_with_grad_generic(x: &[f32], out: &mut [f32], grad: &mut [f32]) {
    for ((o, d), &v) in out.iter_mut().zip(grad.iter_mut()).zip(x) {
        let (erf, e) = erf_and_exp(v * FRAC_1_SQRT_2);
        let cdf = 0.5 * (1.0 + erf);
        *o = v * cdf;
        *d = cdf + v * (FRAC_1_SQRT_2PI * e);
    }
}

#[inline(always)]
fn gelu_grad_generic(x: &[f32], g: &[f32], out: &mut [f32]) {
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
        let cdf = 0.5 * (1.0 + erf(v * FRAC_1_SQRT_2));
        let pdf = FRAC_1_SQRT_2PI * exp(-0.5 * v * v);
        *o = g * (cdf + v * pdf);
    }
}

macro_rules! avx2_or_baseline {
    ($name:ident, $generic:ident, ($($arg:ident: $ty:ty),*)) => {
        avx2_or_baseline!($name, $generic, ($($arg: $ty),*) -> ());
    };
    ($name:ident, $generic:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        pub fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $generic($($arg),*)
                }
                if crate::nn::kernels::avx2_fma() {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

/// max, sum and dot product over 8 lanes, so that the loops vectorise (one running max or
/// sum is a dependency chain the compiler may not reorder).
#[inline(always)]
fn max8(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let c = a.chunks_exact(8);
    let rest = c.remainder();
    for x in c {
        for i in 0..8 {
            acc[i] = if x[i] > acc[i] { x[i] } else { acc[i] };
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

#[inline(always)]
fn sum8(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let c = a.chunks_exact(8);
    let rest = c.remainder();
    for x in c {
        for i in 0..8 {
            acc[i] += x[i];
        }
    }
    acc.iter().chain(rest).sum()
}

#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

#[inline(always)]
fn softmax_row_generic(row: &mut [f32]) {
    let max = max8(row);
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / sum8(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

avx2_or_baseline!(gelu, gelu_generic, (x: &[f32], out: &mut [f32]));
avx2_or_baseline!(softmax_row, softmax_row_generic, (row: &mut [f32]));
avx2_or_baseline!(dot, dot_generic, (a: &[f32], b: &[f32]) -> f32);
#[inline(always)]
fn dropout_generic(x: &[f32], out: &mut [f32], start: u32, keys: [u32; 3], scale: f32) {
    super::ops::dropout_chunk(x, out, start, keys, scale)
}
avx2_or_baseline!(dropout, dropout_generic, (x: &[f32], out: &mut [f32], start: u32, keys: [u32; 3], scale: f32));
avx2_or_baseline!(gelu_grad, gelu_grad_generic, (x: &[f32], g: &[f32], out: &mut [f32]));
avx2_or_baseline!(gelu_with_grad, gelu_with_grad_generic, (x: &[f32], out: &mut [f32], grad: &mut [f32]));
