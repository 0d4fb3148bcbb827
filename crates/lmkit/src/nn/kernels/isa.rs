//! Which instruction sets the kernels may use: detected once at run time, so one binary runs
//! the best path on every x86-64 CPU, and capped by `LMKIT_ISA` for A/B runs and for testing the
//! narrower paths on a wide machine.
//!
//! `LMKIT_ISA` = `portable` (no SIMD kernels), `avx2` (AVX2 + FMA), `avx512` (AVX-512 F/BW/VL,
//! without VNNI or BF16), `avx512-vnni`, `avx512-bf16` (everything but AMX), `native` (the
//! default: all the CPU has, AMX included). A level the
//! CPU lacks is refused by [`check_env`] (the CLI calls it first), never run.

use std::sync::OnceLock;

/// The features the kernels are written for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// AVX2 and FMA: the f32 `sgemm` tile, the `vpmaddubsw` int8 tile, the fast maths.
    pub avx2_fma: bool,
    /// AVX-512 F, BW and VL together.
    pub avx512: bool,
    /// AVX512-VNNI (`vpdpbusd`: u8 x i8 summed straight into i32), with AVX-512 VL.
    pub avx512_vnni: bool,
    /// AVX512-BF16 (`vdpbf16ps`).
    pub avx512_bf16: bool,
    /// AMX-TILE and AMX-BF16 with the OS saving the tile state (XCR0 bits 17 and 18).
    pub amx_bf16: bool,
    /// 512-bit FMAs issue at the 256-bit rate (full-width units, Intel Sapphire Rapids), not as
    /// two halves (AMD Zen 4): measured, since no CPUID bit says it.
    pub fma512_full_width: bool,
}

impl Features {
    /// What this CPU has.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2_fma = has!("avx2") && has!("fma");
            let avx512 = avx2_fma && has!("avx512f") && has!("avx512bw") && has!("avx512vl");
            let avx512_bf16 = avx512 && has!("avx512bf16");
            Self {
                avx2_fma,
                avx512,
                avx512_vnni: avx512 && has!("avx512vnni"),
                avx512_bf16,
                amx_bf16: avx512_bf16 && amx_bf16(),
                fma512_full_width: avx512 && fma512_full_width(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self::default()
        }
    }

    /// The features a `LMKIT_ISA` level allows, or None for an unknown name.
    fn level(name: &str) -> Option<Self> {
        let all = Self {
            avx2_fma: true,
            avx512: true,
            avx512_vnni: true,
            avx512_bf16: true,
            amx_bf16: true,
            fma512_full_width: true,
        };
        Some(match name {
            "portable" | "none" => Self::default(),
            "avx2" => Self {
                avx2_fma: true,
                ..Self::default()
            },
            "avx512" => Self {
                avx2_fma: true,
                avx512: true,
                fma512_full_width: true,
                ..Self::default()
            },
            "avx512-vnni" => Self {
                avx512_bf16: false,
                amx_bf16: false,
                ..all
            },
            "avx512-bf16" => Self {
                amx_bf16: false,
                ..all
            },
            "native" | "" => all,
            _ => return None,
        })
    }

    fn and(self, o: Self) -> Self {
        Self {
            avx2_fma: self.avx2_fma && o.avx2_fma,
            avx512: self.avx512 && o.avx512,
            avx512_vnni: self.avx512_vnni && o.avx512_vnni,
            avx512_bf16: self.avx512_bf16 && o.avx512_bf16,
            amx_bf16: self.amx_bf16 && o.amx_bf16,
            fma512_full_width: self.fma512_full_width && o.fma512_full_width,
        }
    }

    /// A short name of the paths these features select, e.g. `avx512+vnni+bf16`, `avx2`,
    /// `portable`: what benchmarks report as `"isa"`.
    pub fn name(&self) -> String {
        if self.avx512 {
            let mut s = String::from("avx512");
            if self.avx512_vnni {
                s.push_str("+vnni");
            }
            if self.avx512_bf16 {
                s.push_str("+bf16");
            }
            if self.amx_bf16 {
                s.push_str("+amx");
            }
            s
        } else if self.avx2_fma {
            "avx2".into()
        } else {
            "portable".into()
        }
    }
}

/// AMX-TILE + AMX-BF16 in CPUID leaf 7 (EDX bits 24 and 22), and the tile state enabled by the
/// OS in XCR0 (bits 17 and 18). `is_x86_feature_detected!` does not name AMX on stable Rust.
#[cfg(target_arch = "x86_64")]
fn amx_bf16() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // Leaf 7 is read only when the CPU reports it.
    if __cpuid(0).eax < 7 {
        return false;
    }
    let leaf7 = __cpuid_count(7, 0);
    let cpu = leaf7.edx & (1 << 24) != 0 && leaf7.edx & (1 << 22) != 0;
    // OSXSAVE (CPUID 1, ECX bit 27) says XGETBV may run.
    if __cpuid(1).ecx & (1 << 27) == 0 {
        return false;
    }
    // SAFETY: XSAVE is enabled (OSXSAVE above).
    let os = unsafe { xcr0() };
    cpu && os & (0b11 << 17) == 0b11 << 17
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    std::arch::x86_64::_xgetbv(0)
}

/// Times 12 independent FMA chains in 256-bit and in 512-bit registers, the same number of
/// instructions each (best of 5 runs of ~50 us): full-width units finish the 512-bit loop in
/// about the same time, split ones in about twice the time. Measured once per process.
#[cfg(target_arch = "x86_64")]
fn fma512_full_width() -> bool {
    static FULL: OnceLock<bool> = OnceLock::new();
    *FULL.get_or_init(|| {
        let best = |f: &dyn Fn() -> f32| {
            (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    std::hint::black_box(f());
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        const N: usize = 20_000;
        // SAFETY: called only where AVX2, FMA and AVX-512 F were detected.
        let t256 = best(&|| unsafe { fma_chains_256(N) });
        let t512 = best(&|| unsafe { fma_chains_512(N) });
        t512 < 1.5 * t256
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_256(n: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(1.0); 12];
    let (a, b) = std::hint::black_box((_mm256_set1_ps(0.999), _mm256_set1_ps(1e-3)));
    for _ in 0..n {
        for c in acc.iter_mut() {
            *c = _mm256_fmadd_ps(*c, a, b);
        }
    }
    let mut out = [0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
    out[0]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_512(n: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(1.0); 12];
    let (a, b) = std::hint::black_box((_mm512_set1_ps(0.999), _mm512_set1_ps(1e-3)));
    for _ in 0..n {
        for c in acc.iter_mut() {
            *c = _mm512_fmadd_ps(*c, a, b);
        }
    }
    _mm512_reduce_add_ps(acc[0])
}

/// The features the kernels use: the CPU's, capped by `LMKIT_ISA`.
pub fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(|| {
        let cpu = Features::detect();
        let asked = std::env::var("LMKIT_ISA").unwrap_or_default();
        // An unknown or unavailable level is refused by `check_env` before any work; a library
        // caller that skipped it still gets no instruction the CPU lacks.
        Features::level(asked.trim()).map_or(cpu, |l| l.and(cpu))
    })
}

/// Refuses an `LMKIT_ISA` that names no level, or asks for instructions this CPU lacks.
pub fn check_env() -> Result<(), String> {
    let asked = std::env::var("LMKIT_ISA").unwrap_or_default();
    let asked = asked.trim();
    let Some(level) = Features::level(asked) else {
        return Err(format!(
            "LMKIT_ISA={asked:?} is not a level: use portable, avx2, avx512, avx512-vnni, avx512-bf16 or native"
        ));
    };
    let cpu = Features::detect();
    if level.and(cpu) != level && asked != "native" && !asked.is_empty() {
        return Err(format!(
            "LMKIT_ISA={asked} asks for instructions this CPU lacks (it has: {}); \
             use a lower level or unset LMKIT_ISA",
            cpu.name()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_nest_and_never_exceed_the_cpu() {
        let names = [
            "portable",
            "avx2",
            "avx512",
            "avx512-vnni",
            "avx512-bf16",
            "native",
        ];
        let levels: Vec<Features> = names.iter().map(|n| Features::level(n).unwrap()).collect();
        for w in levels.windows(2) {
            // Each level allows everything the one below it does.
            assert_eq!(w[0].and(w[1]), w[0]);
        }
        let cpu = Features::detect();
        for l in levels {
            let f = l.and(cpu);
            assert!(!f.avx512 || cpu.avx512);
            assert!(!f.avx512_vnni || cpu.avx512_vnni);
            assert!(!f.avx2_fma || cpu.avx2_fma);
        }
        assert_eq!(Features::level("avx9"), None);
        assert_eq!(Features::default().name(), "portable");
    }
}
