//! The CPU kernels under every layer: fused matmuls (`matmul`), element-wise and row ops with
//! their backward passes (`ops`), the f32 GEMM (`sgemm`) and int8 inference (`int8`).
//! Each is a candle `CustomOp` on f32/f64 CPU storage; other devices and dtypes compose candle
//! ops instead. Plumbing they share (storage dispatch, the ISA check, a thread-crossing pointer)
//! lives here, once.

// Shared by the fused CPU kernels in `matmul` and `ops` (defined before them: macros are
// visible to the modules declared after them).

/// Calls `$f::<f32>` or `$f::<f64>` on the slices of one, two or three CPU storages of the
/// same float type, with their layouts and any extra arguments.
macro_rules! dispatch1 {
    ($s:expr, $l:expr, $f:ident $(, $arg:expr)*) => {
        match $s {
            candle_core::CpuStorage::F32(a) => $f::<f32>(a, $l $(, $arg)*),
            candle_core::CpuStorage::F64(a) => $f::<f64>(a, $l $(, $arg)*),
            _ => candle_core::bail!("{}: only f32 and f64 are supported", stringify!($f)),
        }
    };
}

macro_rules! dispatch2 {
    ($s1:expr, $l1:expr, $s2:expr, $l2:expr, $f:ident $(, $arg:expr)*) => {
        match ($s1, $s2) {
            (candle_core::CpuStorage::F32(a), candle_core::CpuStorage::F32(b)) => {
                $f::<f32>(a, $l1, b, $l2 $(, $arg)*)
            }
            (candle_core::CpuStorage::F64(a), candle_core::CpuStorage::F64(b)) => {
                $f::<f64>(a, $l1, b, $l2 $(, $arg)*)
            }
            _ => candle_core::bail!("{}: inputs must all be f32 or all f64", stringify!($f)),
        }
    };
}

macro_rules! dispatch3 {
    ($s1:expr, $l1:expr, $s2:expr, $l2:expr, $s3:expr, $l3:expr, $f:ident $(, $arg:expr)*) => {
        match ($s1, $s2, $s3) {
            (
                candle_core::CpuStorage::F32(a),
                candle_core::CpuStorage::F32(b),
                candle_core::CpuStorage::F32(c),
            ) => $f::<f32>(a, $l1, b, $l2, c, $l3 $(, $arg)*),
            (
                candle_core::CpuStorage::F64(a),
                candle_core::CpuStorage::F64(b),
                candle_core::CpuStorage::F64(c),
            ) => $f::<f64>(a, $l1, b, $l2, c, $l3 $(, $arg)*),
            _ => candle_core::bail!("{}: inputs must all be f32 or all f64", stringify!($f)),
        }
    };
}

/// The trait plumbing of a candle custom op, written once: `cpu_fwd` (and `bwd`, when the op
/// is differentiated through autograd) with their full signatures, from just the argument names
/// and bodies. `self` is named by the caller (`&self`), so the bodies can read the op's fields.
macro_rules! custom_op {
    (impl CustomOp1 for $op:ty, $name:literal,
     fn cpu_fwd(&$this:ident, $s1:ident, $l1:ident) $fwd:block
     $(fn bwd(&$bthis:ident, $x1:ident, $res:ident, $g:ident) $bwd:block)?) => {
        impl candle_core::CustomOp1 for $op {
            fn name(&self) -> &'static str {
                $name
            }
            fn cpu_fwd(
                &$this,
                $s1: &candle_core::CpuStorage,
                $l1: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> $fwd
            $(fn bwd(
                &$bthis,
                $x1: &candle_core::Tensor,
                $res: &candle_core::Tensor,
                $g: &candle_core::Tensor,
            ) -> candle_core::Result<Option<candle_core::Tensor>> $bwd)?
        }
    };
    (impl CustomOp2 for $op:ty, $name:literal,
     fn cpu_fwd(&$this:ident, $s1:ident, $l1:ident, $s2:ident, $l2:ident) $fwd:block
     $(fn bwd(&$bthis:ident, $x1:ident, $x2:ident, $res:ident, $g:ident) $bwd:block)?) => {
        impl candle_core::CustomOp2 for $op {
            fn name(&self) -> &'static str {
                $name
            }
            fn cpu_fwd(
                &$this,
                $s1: &candle_core::CpuStorage,
                $l1: &candle_core::Layout,
                $s2: &candle_core::CpuStorage,
                $l2: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> $fwd
            $(fn bwd(
                &$bthis,
                $x1: &candle_core::Tensor,
                $x2: &candle_core::Tensor,
                $res: &candle_core::Tensor,
                $g: &candle_core::Tensor,
            ) -> candle_core::Result<(Option<candle_core::Tensor>, Option<candle_core::Tensor>)>
            $bwd)?
        }
    };
    (impl CustomOp3 for $op:ty, $name:literal,
     fn cpu_fwd(&$this:ident, $s1:ident, $l1:ident, $s2:ident, $l2:ident, $s3:ident, $l3:ident)
     $fwd:block
     $(fn bwd(&$bthis:ident, $x1:ident, $x2:ident, $x3:ident, $res:ident, $g:ident) $bwd:block)?) => {
        impl candle_core::CustomOp3 for $op {
            fn name(&self) -> &'static str {
                $name
            }
            #[allow(clippy::too_many_arguments)]
            fn cpu_fwd(
                &$this,
                $s1: &candle_core::CpuStorage,
                $l1: &candle_core::Layout,
                $s2: &candle_core::CpuStorage,
                $l2: &candle_core::Layout,
                $s3: &candle_core::CpuStorage,
                $l3: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> $fwd
            $(fn bwd(
                &$bthis,
                $x1: &candle_core::Tensor,
                $x2: &candle_core::Tensor,
                $x3: &candle_core::Tensor,
                $res: &candle_core::Tensor,
                $g: &candle_core::Tensor,
            ) -> candle_core::Result<(
                Option<candle_core::Tensor>,
                Option<candle_core::Tensor>,
                Option<candle_core::Tensor>,
            )> $bwd)?
        }
    };
}

pub mod bf16;
mod fast;
pub mod int8;
pub mod isa;
pub mod matmul;
pub mod ops;
pub(crate) mod sgemm;

use candle_core::{DType, Result, Tensor};

/// Whether the fused CPU kernels take this tensor (f32 or f64 on the CPU); elsewhere the
/// callers compose candle ops, which candle differentiates on every device.
pub(crate) fn fused_cpu(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// A raw pointer that may cross threads: each thread writes a disjoint block of the output.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// Through a method, so closures capture the whole (Send) wrapper, not the raw field.
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Whether the hand-written AVX2 + FMA kernels run (`sgemm`, `int8`, `fast`): the CPU has them
/// and `LMKIT_ISA` allows them.
pub(crate) fn avx2_fma() -> bool {
    isa::features().avx2_fma
}

/// Whether a hand-written linear layer takes x: f32 on the CPU, last dimension `inp`.
pub(crate) fn takes_rows(x: &Tensor, inp: usize) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && x.dims().last() == Some(&inp)
}

/// Runs `f` on x's rows as one row-major f32 slice and returns its output (`out` values per
/// row) in x's shape with the last dimension `out`: how the hand-written linear layers (int8,
/// bf16, packed f32) take their input. `what` names the layer in the error for another input.
pub(crate) fn map_rows(
    x: &Tensor,
    inp: usize,
    out: usize,
    what: &str,
    f: impl FnOnce(&[f32]) -> Vec<f32>,
) -> Result<Tensor> {
    if !takes_rows(x, inp) {
        candle_core::bail!(
            "{what} ({inp} -> {out}): input {:?} {:?} on {:?} (needs f32 on the CPU, last dimension {inp})",
            x.dims(),
            x.dtype(),
            x.device()
        )
    }
    let x = x.contiguous()?;
    let y = {
        let (storage, layout) = x.storage_and_layout();
        let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(xs)) = &*storage else {
            unreachable!("`takes_rows` checked f32 on the CPU")
        };
        f(contiguous_data(xs, layout)?)
    };
    let mut shape = x.dims().to_vec();
    *shape.last_mut().expect("checked above") = out;
    Tensor::from_vec(y, shape, x.device())
}

/// The contiguous data of a kernel input, checked.
pub(crate) fn contiguous_data<'a, T>(s: &'a [T], l: &candle_core::Layout) -> Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused op: input must be contiguous".into()))?;
    Ok(&s[a..b])
}

/// Deterministic values in [-1, 1) for the kernels' tests (xorshift64).
#[cfg(test)]
pub(crate) fn test_uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>())
        .unwrap()
}
