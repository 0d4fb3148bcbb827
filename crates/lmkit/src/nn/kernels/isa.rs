//! Which instruction sets the kernels may use: detected once at run time, so one binary runs
//! the best path on every x86-64 CPU, and capped by `LMKIT_ISA` for A/B runs and for testing the
//! narrower paths on a wide machine.
//!
//! `LMKIT_ISA` = `portable` (no SIMD kernels), `avx2` (AVX2 + FMA), `avx512` (AVX-512 F/BW/VL,
//! without VNNI or BF16), `avx512-vnni`, `native` (the default: all the CPU has). A level the
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
}

impl Features {
    /// What this CPU has.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2_fma = has!("avx2") && has!("fma");
            let avx512 = avx2_fma && has!("avx512f") && has!("avx512bw") && has!("avx512vl");
            Self {
                avx2_fma,
                avx512,
                avx512_vnni: avx512 && has!("avx512vnni"),
                avx512_bf16: avx512 && has!("avx512bf16"),
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
                ..Self::default()
            },
            "avx512-vnni" => Self {
                avx512_bf16: false,
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
            s
        } else if self.avx2_fma {
            "avx2".into()
        } else {
            "portable".into()
        }
    }
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
            "LMKIT_ISA={asked:?} is not a level: use portable, avx2, avx512, avx512-vnni or native"
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
        let names = ["portable", "avx2", "avx512", "avx512-vnni", "native"];
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
