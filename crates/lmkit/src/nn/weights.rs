//! Checkpoint tensors by name, as models ask for them while they are built.
//!
//! Plays the part of candle's `VarBuilder`, with three differences that matter for fine-tuning:
//! a tensor the body needs but the checkpoint lacks is an error (never a silent random init);
//! only layers that are new by design (a classification head) may be initialised, and they are
//! reported; in trainable mode every tensor becomes a `Var` recorded under its canonical name,
//! which is what the optimiser updates and what `save` writes.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use rand::SeedableRng;
use rand_distr::Distribution;

use super::DropoutRng;
use crate::formats::checkpoint::{checkpoint_files, read_checkpoint};

/// How a model is loaded. One value carries the choice from the CLI, the Python binding or the
/// server through `from_pretrained` into [`Weights`], where each layer reads what concerns it.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub device: Device,
    /// The dtype the weights are converted to (f32; f64 for gradient checks).
    pub dtype: DType,
    /// int8 weights for the encoder projections (`nn::kernels::int8`), for inference only. The
    /// embeddings, pooler and head stay f32: they are under 1% of the work.
    pub int8: bool,
    /// bf16 weights for the encoder projections (`nn::kernels::bf16`), for inference only: x
    /// and W rounded to bf16, products summed in f32 (AMX or AVX512-BF16).
    pub bf16: bool,
    /// `Some(seed)`: load for fine-tuning. Every weight becomes a trainable `Var`, and the seed
    /// draws the new head's weights and the dropout masks.
    pub for_training: Option<u64>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
            int8: false,
            bf16: false,
            for_training: None,
        }
    }
}

impl LoadOptions {
    /// Inference with int8 encoder projections when `on`.
    pub fn int8(on: bool) -> Self {
        Self {
            int8: on,
            ..Self::default()
        }
    }

    /// Inference at a precision: fp32, bf16 or int8 encoder projections.
    pub fn precision(p: Precision) -> Self {
        Self {
            int8: p == Precision::Int8,
            bf16: p == Precision::Bf16,
            ..Self::default()
        }
    }

    /// The inference precision these options ask for.
    pub fn precision_of(&self) -> Precision {
        match (self.int8, self.bf16) {
            (true, _) => Precision::Int8,
            (false, true) => Precision::Bf16,
            (false, false) => Precision::Fp32,
        }
    }

    /// Fine-tuning on the CPU with this seed.
    pub fn training(seed: u64) -> Self {
        Self {
            for_training: Some(seed),
            ..Self::default()
        }
    }
}

/// The arithmetic of the encoder projections at inference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    Fp32,
    /// bf16 operands, f32 sums (`nn::kernels::bf16`).
    Bf16,
    /// int8 weights and activations, i32 sums (`nn::kernels::int8`).
    Int8,
}

/// How to initialise a tensor that is new by design (not in the checkpoint).
#[derive(Clone, Copy, Debug)]
pub enum Init {
    Normal(f64),
    Zeros,
    Ones,
}

struct Inner {
    tensors: HashMap<String, Tensor>,
    source: String,
    /// Prefixes a checkpoint may or may not carry (e.g. "bert."), tried both ways.
    optional_prefixes: Vec<String>,
    device: Device,
    dtype: DType,
    trainable: bool,
    /// Encoder projections loaded through [`crate::nn::Linear::load`] get int8 copies.
    int8: bool,
    /// ... or bf16 copies.
    bf16: bool,
    params: Mutex<Vec<(String, Var)>>,
    frozen: Mutex<Vec<(String, Tensor)>>,
    initialised: Mutex<Vec<String>>,
    used: Mutex<BTreeSet<String>>,
    init_rng: Mutex<rand::rngs::StdRng>,
    dropout_rng: Arc<DropoutRng>,
}

/// A view on checkpoint tensors under a name prefix.
#[derive(Clone)]
pub struct Weights {
    inner: Arc<Inner>,
    prefix: String,
}

impl Weights {
    /// From tensors already in memory; `source` names them in error messages.
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        source: impl Into<String>,
        device: &Device,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                tensors,
                source: source.into(),
                optional_prefixes: vec![],
                device: device.clone(),
                dtype: DType::F32,
                trainable: false,
                int8: false,
                bf16: false,
                params: Mutex::new(vec![]),
                frozen: Mutex::new(vec![]),
                initialised: Mutex::new(vec![]),
                used: Mutex::new(BTreeSet::new()),
                init_rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(42)),
                dropout_rng: DropoutRng::new(42),
            }),
            prefix: String::new(),
        }
    }

    /// No checkpoint at all: every tensor must be initialised (random test models).
    pub fn empty(device: &Device) -> Self {
        Self::from_tensors(HashMap::new(), "<new model>", device)
    }

    /// Reads `model.safetensors` (or its shards, or `pytorch_model.bin`) from a model folder.
    pub fn from_folder(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let files = checkpoint_files(dir)?;
        let mut tensors = HashMap::new();
        for f in &files {
            tensors.extend(read_checkpoint(f, device)?);
        }
        let source = files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self::from_tensors(tensors, source, device))
    }

    fn with_inner(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("Weights options must be set before the model is built"));
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
            prefix: self.prefix,
        }
    }

    /// Prefixes that checkpoints of this architecture may or may not carry ("bert.").
    pub fn optional_prefixes(self, p: &[&str]) -> Self {
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        self.with_inner(|i| i.optional_prefixes = p)
    }

    /// Makes every tensor a `Var` (for fine-tuning) and seeds new-layer initialisation.
    pub fn trainable(self, seed: u64) -> Self {
        self.with_inner(|i| {
            i.trainable = true;
            i.init_rng = Mutex::new(rand::rngs::StdRng::seed_from_u64(seed));
            i.dropout_rng = DropoutRng::new(seed);
        })
    }

    /// Seeds the initialisation of new layers without making the model trainable.
    pub fn seed(self, seed: u64) -> Self {
        self.with_inner(|i| {
            i.init_rng = Mutex::new(rand::rngs::StdRng::seed_from_u64(seed));
            i.dropout_rng = DropoutRng::new(seed);
        })
    }

    /// Applies what [`LoadOptions`] says about the weights: dtype, int8, training mode and
    /// seed (an inference model is seeded with 42, so a new head is reproducible too).
    pub fn configure(self, opts: &LoadOptions) -> anyhow::Result<Self> {
        if opts.int8 && opts.for_training.is_some() {
            anyhow::bail!(
                "int8 is for inference: load a trained model for prediction with int8, not one \
                 loaded for training (its int8 copy would not follow the updates)"
            )
        }
        if opts.bf16 && opts.for_training.is_some() {
            anyhow::bail!(
                "bf16 is for inference here: fine-tuning runs in fp32 (load for training without bf16)"
            )
        }
        if opts.bf16 && opts.int8 {
            anyhow::bail!("choose one of int8 and bf16 for inference, not both")
        }
        if opts.bf16
            && super::kernels::bf16::Kernel::best() == super::kernels::bf16::Kernel::Portable
        {
            anyhow::bail!(
                "bf16 inference needs AMX-BF16 or AVX512-BF16, which this CPU (or LMKIT_ISA) lacks \
                 (it has: {}); use fp32, or int8 for speed",
                super::kernels::isa::features().name()
            )
        }
        let w = self
            .dtype(opts.dtype)
            .with_inner(|i| (i.int8, i.bf16) = (opts.int8, opts.bf16));
        Ok(match opts.for_training {
            Some(seed) => w.trainable(seed),
            None => w.seed(42),
        })
    }

    /// Whether the weights are loaded for fine-tuning (trainable `Var`s).
    pub fn is_trainable(&self) -> bool {
        self.inner.trainable
    }

    /// Whether encoder projections take bf16 copies ([`LoadOptions::bf16`]).
    pub fn bf16(&self) -> bool {
        self.inner.bf16
    }

    /// Whether encoder projections take int8 copies ([`LoadOptions::int8`]).
    pub fn int8(&self) -> bool {
        self.inner.int8
    }

    pub fn dtype(self, dtype: DType) -> Self {
        self.with_inner(|i| i.dtype = dtype)
    }

    pub fn pp(&self, name: impl AsRef<str>) -> Self {
        let name = name.as_ref();
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        };
        Self {
            inner: self.inner.clone(),
            prefix,
        }
    }

    pub fn device(&self) -> &Device {
        &self.inner.device
    }

    pub fn dropout_rng(&self) -> Arc<DropoutRng> {
        self.inner.dropout_rng.clone()
    }

    fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    /// Checkpoint keys that may hold `name`: as is, with/without optional prefixes, and the
    /// old `LayerNorm.gamma/beta` spelling.
    fn candidates(&self, name: &str) -> Vec<String> {
        let mut out = vec![name.to_string()];
        for p in &self.inner.optional_prefixes {
            match name.strip_prefix(p.as_str()) {
                Some(rest) => out.push(rest.to_string()),
                None => out.push(format!("{p}{name}")),
            }
        }
        let legacy: Vec<String> = out
            .iter()
            .filter_map(|n| {
                if !n.contains("LayerNorm") && !n.contains("layer_norm") {
                    return None;
                }
                n.strip_suffix(".weight")
                    .map(|b| format!("{b}.gamma"))
                    .or_else(|| n.strip_suffix(".bias").map(|b| format!("{b}.beta")))
            })
            .collect();
        out.extend(legacy);
        out
    }

    fn lookup(&self, name: &str) -> Option<(String, Tensor)> {
        self.candidates(name)
            .into_iter()
            .find_map(|k| self.inner.tensors.get(&k).map(|t| (k, t.clone())))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.lookup(&self.full_name(name)).is_some()
    }

    /// A tensor the checkpoint must have, with exactly this shape.
    pub fn get(&self, shape: impl Into<Shape>, name: &str) -> Result<Tensor> {
        let shape = shape.into();
        let full = self.full_name(name);
        match self.lookup(&full) {
            Some((key, t)) => self.register(&full, &key, t, &shape),
            None => candle_core::bail!(
                "tensor {full:?} (shape {:?}) is missing from {}; is this the right model for this architecture?",
                shape.dims(),
                self.inner.source
            ),
        }
    }

    /// A tensor from the checkpoint if present, else newly initialised (and reported).
    pub fn get_or_init(&self, shape: impl Into<Shape>, name: &str, init: Init) -> Result<Tensor> {
        let shape = shape.into();
        let full = self.full_name(name);
        if let Some((key, t)) = self.lookup(&full) {
            return self.register(&full, &key, t, &shape);
        }
        let t = {
            let mut rng = self.inner.init_rng.lock().unwrap();
            let n = shape.elem_count();
            let v: Vec<f32> = match init {
                Init::Zeros => vec![0.0; n],
                Init::Ones => vec![1.0; n],
                Init::Normal(std) => {
                    let d = rand_distr::Normal::new(0.0f32, std as f32)
                        .map_err(candle_core::Error::wrap)?;
                    (0..n).map(|_| d.sample(&mut *rng)).collect()
                }
            };
            Tensor::from_vec(v, shape.clone(), &self.inner.device)?.to_dtype(self.inner.dtype)?
        };
        self.inner.initialised.lock().unwrap().push(full.clone());
        self.store(&full, t)
    }

    fn register(&self, full: &str, key: &str, t: Tensor, shape: &Shape) -> Result<Tensor> {
        if t.shape() != shape {
            candle_core::bail!(
                "tensor {key:?} in {} has shape {:?}, but the model config needs {:?}",
                self.inner.source,
                t.dims(),
                shape.dims()
            )
        }
        self.inner.used.lock().unwrap().insert(key.to_string());
        let t = t
            .to_device(&self.inner.device)?
            .to_dtype(self.inner.dtype)?;
        self.store(full, t)
    }

    fn store(&self, full: &str, t: Tensor) -> Result<Tensor> {
        if self.inner.trainable {
            let v = Var::from_tensor(&t)?;
            let out = v.as_tensor().clone();
            self.inner
                .params
                .lock()
                .unwrap()
                .push((full.to_string(), v));
            Ok(out)
        } else {
            self.inner
                .frozen
                .lock()
                .unwrap()
                .push((full.to_string(), t.clone()));
            Ok(t)
        }
    }

    /// The trainable parameters, by canonical name, in creation order.
    pub fn params(&self) -> Vec<(String, Var)> {
        self.inner.params.lock().unwrap().clone()
    }

    /// Every tensor the model holds, by canonical (saved) name.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .params()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        out.extend(self.inner.frozen.lock().unwrap().iter().cloned());
        out
    }

    /// Names of tensors that were initialised because the checkpoint lacked them.
    pub fn newly_initialised(&self) -> Vec<String> {
        self.inner.initialised.lock().unwrap().clone()
    }

    /// Checkpoint tensors the model did not use (e.g. a pre-training head).
    pub fn unused(&self) -> Vec<String> {
        let used = self.inner.used.lock().unwrap();
        let mut v: Vec<String> = self
            .inner
            .tensors
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect();
        v.sort();
        v
    }
}

/// Builds a named set of random tensors the way transformers initialises a new model, for tests
/// and benchmarks that need a model of a given shape without a checkpoint.
pub struct RandomTensors {
    prefix: String,
    std: f64,
    rng: rand::rngs::StdRng,
    map: HashMap<String, Tensor>,
}

impl RandomTensors {
    pub fn new(prefix: &str, std: f64, seed: u64) -> Self {
        Self {
            prefix: prefix.to_string(),
            std,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            map: HashMap::new(),
        }
    }

    fn put(&mut self, name: &str, t: Tensor) {
        self.map.insert(format!("{}{}", self.prefix, name), t);
    }

    pub fn normal(&mut self, name: &str, shape: impl Into<Shape>) -> Result<()> {
        let shape = shape.into();
        let d =
            rand_distr::Normal::new(0.0f32, self.std as f32).map_err(candle_core::Error::wrap)?;
        let v: Vec<f32> = (0..shape.elem_count())
            .map(|_| d.sample(&mut self.rng))
            .collect();
        let t = Tensor::from_vec(v, shape, &Device::Cpu)?;
        self.put(name, t);
        Ok(())
    }

    pub fn constant(&mut self, name: &str, shape: impl Into<Shape>, value: f32) -> Result<()> {
        let t = Tensor::full(value, shape.into(), &Device::Cpu)?;
        self.put(name, t);
        Ok(())
    }

    pub fn linear(&mut self, name: &str, in_dim: usize, out_dim: usize) -> Result<()> {
        self.normal(&format!("{name}.weight"), (out_dim, in_dim))?;
        self.constant(&format!("{name}.bias"), out_dim, 0.0)
    }

    pub fn layer_norm(&mut self, name: &str, dim: usize) -> Result<()> {
        self.constant(&format!("{name}.weight"), dim, 1.0)?;
        self.constant(&format!("{name}.bias"), dim, 0.0)
    }

    pub fn into_map(self) -> HashMap<String, Tensor> {
        self.map
    }
}
