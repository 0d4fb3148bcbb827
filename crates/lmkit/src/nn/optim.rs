//! AdamW and learning-rate schedules, written out so their state can be saved and resumed
//! exactly (candle's AdamW keeps its moments private).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, Result};
use candle_core::{
    backprop::GradStore, CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Tensor, Var,
};
use rayon::prelude::*;

/// Gradients aligned with a parameter list (None: the parameter got no gradient).
pub type Grads = Vec<Option<Tensor>>;

/// Takes the gradients of `params` out of a backward pass.
pub fn grads_of(store: &GradStore, params: &[(String, Var)]) -> Grads {
    params
        .iter()
        .map(|(_, p)| store.get(p).map(Tensor::detach))
        .collect()
}

/// Adds `more` into `acc` (gradient accumulation).
pub fn accumulate(acc: &mut Grads, more: Grads) -> Result<()> {
    for (a, m) in acc.iter_mut().zip(more) {
        *a = match (a.take(), m) {
            (Some(x), Some(y)) => Some((x + y)?),
            (x, y) => x.or(y),
        };
    }
    Ok(())
}
use serde::{Deserialize, Serialize};

/// AdamW hyper-parameters. Defaults are PyTorch's / transformers' (eps 1e-8; Keras' `Adam`
/// in the course uses 1e-7, a difference far below anything training can notice).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 5e-5,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Decoupled-weight-decay Adam (Loshchilov & Hutter), as `torch.optim.AdamW`.
pub struct AdamW {
    pub config: AdamWConfig,
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates taken so far (for bias correction).
    pub step: usize,
}

impl AdamW {
    pub fn new(params: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        // Separate zero tensors (not clones sharing storage): the update writes them in place.
        let zeros = || {
            params
                .iter()
                .map(|(_, p)| p.zeros_like())
                .collect::<candle_core::Result<Vec<_>>>()
        };
        let (m, v) = (zeros()?, zeros()?);
        Ok(Self {
            config,
            params,
            m,
            v,
            step: 0,
        })
    }

    /// One update with learning rate `lr` from the gradients in `grads` (parameters without a
    /// gradient are left alone, as PyTorch does for `grad is None`).
    pub fn step(&mut self, grads: &Grads, lr: f64) -> Result<()> {
        self.step += 1;
        let c = &self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads[i].as_ref() else { continue };
            let update = AdamWUpdate {
                beta1: c.beta1,
                beta2: c.beta2,
                bc1,
                bc2,
                eps: c.eps,
                lr,
                decay: 1.0 - lr * c.weight_decay,
            };
            if update.fuses(p, &self.m[i], &self.v[i], g) {
                update.apply(p, &self.m[i], &self.v[i], g)?;
                continue;
            }
            let m = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            let mut new = p.as_tensor().clone();
            if c.weight_decay != 0.0 {
                new = (&new * (1.0 - lr * c.weight_decay))?;
            }
            p.set(&(new - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Saves the moments (safetensors) and the step count (JSON) next to each other.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut tensors = vec![];
        for (i, (name, _)) in self.params.iter().enumerate() {
            tensors.push((format!("m.{name}"), self.m[i].clone()));
            tensors.push((format!("v.{name}"), self.v[i].clone()));
        }
        crate::formats::checkpoint::save_safetensors(&tensors, &dir.join("optimizer.safetensors"))?;
        let state = serde_json::json!({"step": self.step, "config": self.config});
        crate::util::write_atomic(&dir.join("optimizer.json"), state.to_string().as_bytes())
    }

    pub fn load(&mut self, dir: &Path) -> Result<()> {
        let f = dir.join("optimizer.safetensors");
        let t: HashMap<String, Tensor> = crate::formats::checkpoint::read_checkpoint(
            &f,
            self.m
                .first()
                .map_or(&candle_core::Device::Cpu, |m| m.device()),
        )?;
        for (i, (name, _)) in self.params.iter().enumerate() {
            let get = |k: String| {
                t.get(&k)
                    .cloned()
                    .ok_or_else(|| anyhow!("{}: no {k}", f.display()))
            };
            self.m[i] = get(format!("m.{name}"))?;
            self.v[i] = get(format!("v.{name}"))?;
        }
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("optimizer.json"))?)?;
        self.step = s["step"].as_u64().unwrap_or(0) as usize;
        Ok(())
    }
}

/// One AdamW update of a parameter and its moments, in place, in one pass over memory
/// (written out as tensor ops it allocates ten temporaries the size of the parameter; the
/// embedding matrix alone is 47 MB): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
/// p = p (1 - lr wd) - lr (m / bc1) / (sqrt(v / bc2) + eps), the same formula as the composed
/// path below and `torch.optim.AdamW`.
#[derive(Clone, Copy)]
struct AdamWUpdate {
    beta1: f64,
    beta2: f64,
    bc1: f64,
    bc2: f64,
    eps: f64,
    lr: f64,
    decay: f64,
}

impl AdamWUpdate {
    fn fuses(&self, p: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor) -> bool {
        [p, m, v, g]
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous())
            && g.shape() == p.shape()
    }

    fn apply(&self, p: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor) -> Result<()> {
        m.inplace_op2(
            g,
            &Moment {
                op: *self,
                second: false,
            },
        )?;
        v.inplace_op2(
            g,
            &Moment {
                op: *self,
                second: true,
            },
        )?;
        p.inplace_op3(m, v, self)?;
        Ok(())
    }
}

/// m = b1 m + (1 - b1) g, or v = b2 v + (1 - b2) g^2.
struct Moment {
    op: AdamWUpdate,
    second: bool,
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("AdamW: contiguous f32 tensors expected"),
    }
}

fn f32_slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("AdamW: contiguous f32 tensors expected"),
    }
}

const CHUNK: usize = 1 << 14;

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "lmkit-adamw-moment"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (dst, g) = (f32_slice_mut(s1, l1)?, f32_slice(s2, l2)?);
        let beta = if self.second {
            self.op.beta2
        } else {
            self.op.beta1
        };
        let (b, a) = (beta as f32, (1.0 - beta) as f32);
        let second = self.second;
        dst.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(d, g)| {
                for (d, &g) in d.iter_mut().zip(g) {
                    *d = *d * b + if second { g * g * a } else { g * a };
                }
            });
        Ok(())
    }
}

impl InplaceOp3 for AdamWUpdate {
    fn name(&self) -> &'static str {
        "lmkit-adamw-step"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let p = f32_slice_mut(s1, l1)?;
        let (m, v) = (f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let (bc1, bc2, eps) = (self.bc1 as f32, self.bc2 as f32, self.eps as f32);
        let (lr, decay) = (self.lr as f32, self.decay as f32);
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    let update = (m / bc1) / ((v / bc2).sqrt() + eps);
                    *p = *p * decay - update * lr;
                }
            });
        Ok(())
    }
}

/// Scales all gradients so their global L2 norm is at most `max_norm`
/// (`torch.nn.utils.clip_grad_norm_`). Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut Grads, max_norm: f64) -> Result<f64> {
    let norm = grad_norm(grads)?;
    if norm > max_norm && norm.is_finite() {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut().flatten() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

/// Global L2 norm of all gradients.
pub fn grad_norm(grads: &Grads) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter().flatten() {
        sq += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(sq.sqrt())
}

/// Learning-rate schedule over the whole run, as transformers' `get_*_schedule_with_warmup`
/// (the multiplier at optimizer step `step`, counted from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    Linear,
    Cosine,
}

impl std::str::FromStr for Schedule {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(Self::Constant),
            "linear" => Ok(Self::Linear),
            "cosine" => Ok(Self::Cosine),
            o => Err(anyhow!("unknown schedule {o:?} (constant, linear, cosine)")),
        }
    }
}

impl Schedule {
    /// The learning rate at `step` of `total` steps with `warmup` warm-up steps.
    pub fn lr(&self, base: f64, step: usize, warmup: usize, total: usize) -> f64 {
        if step < warmup {
            return base * step as f64 / warmup.max(1) as f64;
        }
        let rest = total.saturating_sub(warmup).max(1) as f64;
        let progress = ((step - warmup) as f64 / rest).min(1.0);
        match self {
            Self::Constant => base,
            Self::Linear => base * (1.0 - progress).max(0.0),
            Self::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }
}

/// Gradients by parameter, as the written-out backward pass (`nn::encoder`) produces them:
/// each is stored once, and added to only when a parameter is used twice.
#[derive(Default)]
pub struct ParamGrads(HashMap<candle_core::TensorId, Tensor>);

impl ParamGrads {
    pub fn add(&mut self, param: &Tensor, grad: Tensor) -> candle_core::Result<()> {
        use std::collections::hash_map::Entry;
        match self.0.entry(param.id()) {
            Entry::Vacant(e) => _ = e.insert(grad),
            Entry::Occupied(mut e) => *e.get_mut() = (e.get() + grad)?,
        }
        Ok(())
    }

    pub fn take(&mut self, param: &Tensor) -> Option<Tensor> {
        self.0.remove(&param.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_match_transformers_lambdas() {
        // get_linear_schedule_with_warmup(warmup=2, total=10): 0, .5, 1, 7/8, ..., 1/8
        let l = Schedule::Linear;
        assert_eq!(l.lr(1.0, 0, 2, 10), 0.0);
        assert_eq!(l.lr(1.0, 1, 2, 10), 0.5);
        assert_eq!(l.lr(1.0, 2, 2, 10), 1.0);
        assert_eq!(l.lr(1.0, 9, 2, 10), 0.125);
        assert!((Schedule::Cosine.lr(1.0, 6, 2, 10) - 0.5).abs() < 1e-12);
        assert_eq!(Schedule::Constant.lr(3.0, 7, 0, 10), 3.0);
    }

    #[test]
    fn adamw_first_step_moves_each_weight_by_lr() {
        // With bias correction, step 1 is p -= lr * g / (|g| + eps): a move of ~lr per weight.
        let p = Var::new(&[1.0f64, -2.0, 3.0], &candle_core::Device::Cpu).unwrap();
        let loss = (p.as_tensor()
            * Tensor::new(&[2.0f64, -0.5, 0.0], &candle_core::Device::Cpu).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
        let params = vec![("p".to_string(), p.clone())];
        let grads = grads_of(&loss.backward().unwrap(), &params);
        let mut opt = AdamW::new(
            params,
            AdamWConfig {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        opt.step(&grads, 0.1).unwrap();
        let v = p.as_tensor().to_vec1::<f64>().unwrap();
        assert!(
            (v[0] - 0.9).abs() < 1e-6 && (v[1] + 1.9).abs() < 1e-6 && v[2] == 3.0,
            "{v:?}"
        );
    }
}
