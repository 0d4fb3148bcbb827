//! The layers models are built of, each mirroring its `torch.nn` class: they run in eval mode
//! for inference and in train mode for fine-tuning (dropout on, gradients through every op).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::{DType, Module, Result, Tensor};

use super::kernels::ops::{gelu_erf, layer_norm};
use super::kernels::{bf16, fused_cpu, int8, matmul, matmul::linear, ops, sgemm};
use super::{Init, ParamGrads, Weights};

/// `torch.nn.Linear`: y = x W^T + b, with W stored (out, in) as in PyTorch checkpoints.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// An int8 copy for inference ([`Self::quantize_int8`]); f32 CPU inputs go through it.
    pub int8: Option<Arc<int8::QuantizedLinear>>,
    /// A bf16 copy for inference; f32 CPU inputs go through it.
    pub bf16: Option<Arc<bf16::Bf16Linear>>,
    /// W^T packed once for the f32 kernel (fp32 inference on an AVX2 CPU), so a call with few
    /// rows does not pack the whole weight again. Costs one more f32 copy of the weight.
    pub(crate) packed: Option<Arc<sgemm::PackedWeight>>,
}

impl Linear {
    /// Loads `{name}.weight` (out x in) and `{name}.bias` from the checkpoint, with an int8
    /// copy when the weights were loaded with [`super::weights::LoadOptions::int8`].
    pub fn load(w: &Weights, in_dim: usize, out_dim: usize) -> Result<Self> {
        let weight = w.get((out_dim, in_dim), "weight")?;
        let bias = Some(w.get(out_dim, "bias")?);
        let mut l = Self::new(weight, bias);
        if w.int8() {
            l.quantize_int8()?;
        }
        if w.bf16() {
            l.bf16 = Some(bf16::Bf16Linear::new(&l.weight, l.bias.as_ref())?);
        }
        let fp32_inference = !(w.is_trainable() || w.int8() || w.bf16());
        if fp32_inference
            && super::kernels::avx2_fma()
            && l.weight.device().is_cpu()
            && l.weight.dtype() == DType::F32
        {
            let data = l.weight.flatten_all()?.to_vec1::<f32>()?;
            let bias = match &l.bias {
                Some(b) => Some(b.to_dtype(DType::F32)?.to_vec1::<f32>()?),
                None => None,
            };
            l.packed = Some(Arc::new(sgemm::PackedWeight::new(
                &data, bias, out_dim, in_dim,
            )));
        }
        Ok(l)
    }

    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            int8: None,
            bf16: None,
            packed: None,
        }
    }

    /// From now on f32 inputs on the CPU take int8 weights and activations (`nn::kernels::int8`).
    /// For inference only: the int8 copy is taken now and would not follow training.
    fn quantize_int8(&mut self) -> Result<()> {
        self.int8 = Some(int8::QuantizedLinear::new(
            &self.weight,
            self.bias.as_ref(),
        )?);
        Ok(())
    }

    /// A new layer initialised as transformers does: normal(0, std) weights, zero bias.
    pub fn load_or_init(w: &Weights, in_dim: usize, out_dim: usize, std: f64) -> Result<Self> {
        let weight = w.get_or_init((out_dim, in_dim), "weight", Init::Normal(std))?;
        let bias = Some(w.get_or_init(out_dim, "bias", Init::Zeros)?);
        Ok(Self::new(weight, bias))
    }

    /// The forward pass without recording a graph (the weights are `Var`s in training), for a
    /// written-out backward pass.
    pub(crate) fn forward_nograd(&self, x: &Tensor) -> Result<Tensor> {
        linear(
            x,
            &self.weight.detach(),
            self.bias.as_ref().map(Tensor::detach).as_ref(),
        )
    }

    /// dx from the gradient `dy` of the output for input `x`; dW and db go to `grads`.
    pub(crate) fn backward(
        &self,
        x: &Tensor,
        dy: &Tensor,
        grads: &mut ParamGrads,
    ) -> Result<Tensor> {
        let (dx, dw, db) = matmul::linear_backward(x, &self.weight, dy)?;
        grads.add(&self.weight, dw)?;
        if let Some(b) = &self.bias {
            grads.add(b, db)?;
        }
        Ok(dx)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(q) = &self.int8 {
            if q.takes(x) {
                return q.forward(x);
            }
        }
        if let Some(h) = &self.bf16 {
            if h.takes(x) {
                return h.forward(x);
            }
        }
        if let Some(p) = &self.packed {
            if let Some(y) = matmul::linear_packed(x, p)? {
                return Ok(y);
            }
        }
        linear(x, &self.weight, self.bias.as_ref())
    }
}

/// `torch.nn.Embedding`: a lookup table; differentiable through `index_select`.
#[derive(Clone, Debug)]
pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    pub fn load(w: &Weights, num: usize, dim: usize) -> Result<Self> {
        Ok(Self {
            weight: w.get((num, dim), "weight")?,
        })
    }

    pub(crate) fn forward_nograd(&self, ids: &Tensor) -> Result<Tensor> {
        Embedding {
            weight: self.weight.detach(),
        }
        .forward(ids)
    }

    /// For a position table: the ids 0..seq as (1, seq) for token ids (batch, seq), or an
    /// error when the sequence is longer than the table.
    pub fn positions(&self, ids: &Tensor) -> Result<Tensor> {
        let (_b, s) = ids.dims2()?;
        let max = self.weight.dim(0)?;
        if s > max {
            candle_core::bail!("sequence of {s} tokens is longer than the model's {max} positions; truncate the input")
        }
        Tensor::arange(0u32, s as u32, ids.device())?.unsqueeze(0)
    }

    /// A position table's gradient from that of its rows broadcast over a batch, dy
    /// (batch, seq, dim): position p's row is used once per sequence, so its gradient is the
    /// sum over the batch.
    pub(crate) fn backward_positions(&self, dy: &Tensor, grads: &mut ParamGrads) -> Result<()> {
        let s = dy.dim(1)?;
        let pos = Tensor::arange(0u32, s as u32, dy.device())?;
        self.backward(&pos, &dy.sum(0)?, grads)
    }

    /// The table's gradient from the gradient `dy` (ids' shape + (dim,)) of the looked-up rows:
    /// each row's gradient added into its id's row.
    pub(crate) fn backward(&self, ids: &Tensor, dy: &Tensor, grads: &mut ParamGrads) -> Result<()> {
        let dim = self.weight.dim(1)?;
        let dy = dy.reshape(((), dim))?;
        let table = self.weight.zeros_like()?;
        grads.add(&self.weight, table.index_add(&ids.flatten_all()?, &dy, 0)?)
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut shape = ids.dims().to_vec();
        shape.push(self.weight.dim(1)?);
        let flat = ids.flatten_all()?;
        let num = self.weight.dim(0)?;
        let max = flat.max(0)?.to_dtype(DType::I64)?.to_scalar::<i64>()?;
        if max < 0 || max as usize >= num {
            candle_core::bail!(
                "token id {max} is out of range for an embedding table of {num} rows"
            )
        }
        self.weight.index_select(&flat, 0)?.reshape(shape)
    }
}

/// `torch.nn.LayerNorm` over the last dimension, with a backward pass (see [`ops`]).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: w.get(dim, "weight")?,
            bias: w.get(dim, "bias")?,
            eps,
        })
    }

    pub(crate) fn forward_nograd(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight.detach(), &self.bias.detach(), self.eps)
    }

    /// dx from the gradient `dy` of the output for input `x`; dweight and dbias go to `grads`.
    pub(crate) fn backward(
        &self,
        x: &Tensor,
        dy: &Tensor,
        grads: &mut ParamGrads,
    ) -> Result<Tensor> {
        let (dx, dw, db) = ops::layer_norm_backward(x, &self.weight, self.eps, dy)?;
        grads.add(&self.weight, dw)?;
        grads.add(&self.bias, db)?;
        Ok(dx)
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Activation functions by their transformers `hidden_act` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// "gelu": the exact erf form, as `torch.nn.functional.gelu`.
    Gelu,
    /// "gelu_new", "gelu_pytorch_tanh", "gelu_fast": the tanh approximation.
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    pub fn from_name(name: &str) -> std::result::Result<Self, String> {
        match name {
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            "silu" | "swish" => Ok(Self::Silu),
            other => Err(format!(
                "unsupported activation {other:?} (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu)"
            )),
        }
    }

    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Gelu => gelu_erf(x),
            Self::GeluTanh => x.gelu(),
            Self::Relu => x.relu(),
            Self::Silu => x.silu(),
        }
    }
}

/// Where dropout masks come from: one seed and a call counter shared by every dropout layer of
/// a model. Mask element `i` of call `k` is a pure function of (seed, k, i), so a run is
/// reproducible from the seed, and resumable from (seed, counter), without storing masks.
#[derive(Debug)]
pub struct DropoutRng {
    seed: AtomicU64,
    counter: AtomicU64,
}

impl DropoutRng {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            seed: AtomicU64::new(seed),
            counter: AtomicU64::new(0),
        })
    }
    /// (seed, calls so far): everything needed to continue the same mask sequence.
    pub fn state(&self) -> (u64, u64) {
        (
            self.seed.load(Ordering::SeqCst),
            self.counter.load(Ordering::SeqCst),
        )
    }
    pub fn set_state(&self, seed: u64, counter: u64) {
        self.seed.store(seed, Ordering::SeqCst);
        self.counter.store(counter, Ordering::SeqCst);
    }
}

pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Inverted dropout as `torch.nn.Dropout`: in training, zero each element with probability p and
/// scale the rest by 1/(1-p); in eval mode, the identity.
#[derive(Clone, Debug)]
pub struct Dropout {
    pub p: f64,
    rng: Arc<DropoutRng>,
}

impl Dropout {
    pub fn new(p: f64, rng: Arc<DropoutRng>) -> Self {
        Self { p, rng }
    }

    /// The next call's mask, or None when nothing is dropped (eval mode, p = 0).
    fn draw(&self, train: bool) -> Result<Option<ops::DropoutOp>> {
        if !train || self.p == 0.0 {
            return Ok(None);
        }
        if !(0.0..1.0).contains(&self.p) {
            candle_core::bail!("dropout probability must be in [0, 1), got {}", self.p)
        }
        let (seed, _) = self.rng.state();
        let call = self.rng.counter.fetch_add(1, Ordering::SeqCst);
        Ok(Some(ops::DropoutOp {
            base: splitmix64(seed ^ splitmix64(call)),
            // p < 1 (checked above), so p * 2^32 fits a u32.
            threshold: (self.p * (u32::MAX as f64 + 1.0)) as u32,
            scale: 1.0 / (1.0 - self.p),
        }))
    }

    /// For a written-out backward pass (CPU, f32/f64): the output without a graph, and the mask
    /// drawn (None if none), whose [`DropMask::backward`] applies it to the output's gradient.
    pub(crate) fn forward_nograd(&self, x: &Tensor, train: bool) -> Result<(Tensor, DropMask)> {
        match self.draw(train)? {
            None => Ok((x.clone(), DropMask(None))),
            Some(op) => Ok((x.contiguous()?.apply_op1_no_bwd(&op)?, DropMask(Some(op)))),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let Some(op) = self.draw(train)? else {
            return Ok(x.clone());
        };
        if fused_cpu(x) {
            return x.contiguous()?.apply_op1(op);
        }
        // Elsewhere: the same mask made on the CPU, applied with a multiply.
        let ones = Tensor::ones(x.shape(), DType::F32, &candle_core::Device::Cpu)?;
        let mask = ones.apply_op1_no_bwd(&op)?.to_device(x.device())?;
        x * mask.to_dtype(x.dtype())?
    }
}

/// The mask one dropout call drew (None: nothing was dropped).
pub(crate) struct DropMask(pub(crate) Option<ops::DropoutOp>);

impl DropMask {
    pub(crate) fn backward(&self, grad: Tensor) -> Result<Tensor> {
        match &self.0 {
            None => Ok(grad),
            Some(op) => op.backward(&grad),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// An input of the wrong width is an error from the packed layer as from any other, never
    /// a read past the end of the input (the packed path checks the width before it runs).
    #[test]
    fn a_packed_layer_refuses_an_input_of_the_wrong_width() -> Result<()> {
        let (out, inp) = (48, 384);
        let w = Tensor::zeros((out, inp), DType::F32, &Device::Cpu)?;
        let b = Tensor::zeros(out, DType::F32, &Device::Cpu)?;
        let tensors = [("l.weight".to_string(), w), ("l.bias".to_string(), b)];
        let ws = Weights::from_tensors(tensors.into_iter().collect(), "test", &Device::Cpu);
        let l = Linear::load(&ws.pp("l"), inp, out)?;
        let x = Tensor::zeros((200, 100), DType::F32, &Device::Cpu)?;
        assert!(l.forward(&x).is_err());
        Ok(())
    }

    /// An inference layer packs W once (on AVX2 CPUs) and answers as the unpacked product does,
    /// within f32 rounding: both sum the same k products in f32, in different orders, so each
    /// is within gamma_k sum |x w| of the exact value, and they are within twice that of each
    /// other (plus one rounding for the bias add).
    #[test]
    fn a_packed_inference_layer_equals_the_plain_product() -> Result<()> {
        let (out, inp) = (48, 384);
        let w = Tensor::from_vec(
            crate::nn::kernels::test_uniform(out * inp, 3),
            (out, inp),
            &Device::Cpu,
        )?;
        let b = Tensor::from_vec(crate::nn::kernels::test_uniform(out, 4), out, &Device::Cpu)?;
        let tensors = [
            ("l.weight".to_string(), w.clone()),
            ("l.bias".to_string(), b.clone()),
        ];
        let ws = Weights::from_tensors(tensors.into_iter().collect(), "test", &Device::Cpu);
        let l = Linear::load(&ws.pp("l"), inp, out)?;
        if !crate::nn::kernels::avx2_fma() {
            println!("skipped: no AVX2 + FMA, so no packed weights");
            return Ok(());
        }
        assert!(l.packed.is_some(), "an inference layer packs its weight");
        let u = 2f64.powi(-24);
        let gamma = inp as f64 * u / (1.0 - inp as f64 * u);
        for rows in [1, 5, 13, 47] {
            let x = Tensor::from_vec(
                crate::nn::kernels::test_uniform(rows * inp, rows as u64),
                (rows, inp),
                &Device::Cpu,
            )?;
            let packed = l.forward(&x)?.to_vec2::<f32>()?;
            let plain = linear(&x, &w, Some(&b))?.to_vec2::<f32>()?;
            let (xv, wv) = (x.to_vec2::<f32>()?, w.to_vec2::<f32>()?);
            for r in 0..rows {
                for n in 0..out {
                    let mag: f64 = (0..inp)
                        .map(|k| (xv[r][k] as f64 * wv[n][k] as f64).abs())
                        .sum();
                    let bound = 2.0 * gamma * mag + 2.0 * u * (mag + 1.0);
                    let d = (packed[r][n] as f64 - plain[r][n] as f64).abs();
                    assert!(d <= bound, "rows {rows} ({r}, {n}): {d} > {bound}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn dropout_is_seeded_unbiased_and_identity_in_eval() -> Result<()> {
        let x = Tensor::ones((100, 1000), DType::F32, &Device::Cpu)?;
        let rng = DropoutRng::new(7);
        let d = Dropout::new(0.1, rng.clone());
        assert_eq!(
            d.forward_t(&x, false)?.sum_all()?.to_scalar::<f32>()?,
            100_000.0
        );
        let a = d.forward_t(&x, true)?;
        let zeros = a
            .eq(0f32)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()?;
        // 100k Bernoulli(0.1) draws: sd = sqrt(100000*0.1*0.9) ~ 95; 5 sd bounds.
        assert!((zeros - 10_000.0).abs() < 475.0, "{zeros} zeros");
        let mean = a.mean_all()?.to_scalar::<f32>()?;
        assert!((mean - 1.0).abs() < 0.006, "mean {mean}");
        // The next call's mask is independent of this one: both drop an element ~p^2 of the
        // time (1000 of 100k; sd ~31, 5 sd bounds).
        let next = d.forward_t(&x, true)?;
        let both = (a.eq(0f32)?.to_dtype(DType::F32)? * next.eq(0f32)?.to_dtype(DType::F32)?)?
            .sum_all()?
            .to_scalar::<f32>()?;
        assert!(
            (both - 1000.0).abs() < 157.0,
            "{both} dropped by both calls"
        );
        rng.set_state(7, 0);
        let b = d.forward_t(&x, true)?;
        assert_eq!((a - b)?.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }
}
