//! The benchmark workloads: each times lmkit alone on a fixed shape (warm-up, then the median
//! of several runs), for the side-by-side scripts under bench/ to compare with the Python
//! reference.

use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};
use lmkit::models::{ArchConfig, Config, ModelInput};

use super::results::{
    precision, GemmResult, GenerateResult, InferResult, PipelineResult, Run, Seq2seqResult,
    TokenizeResult, TrainResult,
};

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Random ids (no padding) of the given shape: every sample costs exactly `seq` tokens.
fn random_input(vocab: usize, batch: usize, seq: usize) -> Result<ModelInput> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let ids: Vec<u32> = (0..batch * seq)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            1000 + (state % (vocab as u64 - 1000)) as u32
        })
        .collect();
    let input_ids = Tensor::from_vec(ids, (batch, seq), &Device::Cpu)?;
    Ok(ModelInput {
        attention_mask: input_ids.ones_like()?,
        token_type_ids: Some(input_ids.zeros_like()?),
        input_ids,
    })
}

/// Median seconds of `iters` runs of `f` after `warmup` runs.
pub fn time_median(
    warmup: usize,
    iters: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times)
}

/// What a benchmark runs: a checkpoint (id or folder), or random weights of a named shape.
pub enum Source {
    Model(String),
    Shape(String),
}

impl Source {
    /// `--shape` wins over `--model` (shapes need no download).
    pub fn new(model: String, shape: Option<String>) -> Self {
        shape.map_or(Self::Model(model), Self::Shape)
    }

    fn name(&self) -> String {
        match self {
            Self::Model(m) => m.clone(),
            Self::Shape(s) => format!("shape:{s}"),
        }
    }

    /// The config and the weights (random ones, seeded, for a shape). `dropout` overrides the
    /// config's dropout probabilities.
    fn load(&self, dropout: Option<f64>) -> Result<(Config, lmkit::nn::Weights)> {
        let (mut cfg, w) = match self {
            Self::Model(m) => {
                let dir = lmkit::hub::resolve(m)?;
                let cfg = Config::from_folder(&dir)?;
                (cfg, lmkit::nn::Weights::from_folder(&dir, &Device::Cpu)?)
            }
            Self::Shape(s) => {
                let json = shape_config(s)?;
                let cfg = Config::from_json(&json.to_string(), format!("<shape {s}>").into())?;
                let tensors = match &cfg.arch {
                    ArchConfig::Bert(c) => lmkit::models::bert::random_tensors(c, "", 0)?,
                    ArchConfig::DistilBert(c) => {
                        lmkit::models::distilbert::random_tensors(c, "", 0)?
                    }
                };
                let w =
                    lmkit::nn::Weights::from_tensors(tensors, format!("<shape {s}>"), &Device::Cpu);
                (cfg, w)
            }
        };
        if let Some(p) = dropout {
            match &mut cfg.arch {
                ArchConfig::Bert(c) => {
                    c.hidden_dropout_prob = p;
                    c.attention_probs_dropout_prob = p;
                    c.classifier_dropout = Some(p);
                }
                ArchConfig::DistilBert(c) => {
                    c.dropout = p;
                    c.attention_dropout = p;
                    c.seq_classif_dropout = p;
                }
            }
        }
        let prefix = match cfg.arch {
            ArchConfig::Bert(_) => "bert.",
            ArchConfig::DistilBert(_) => "distilbert.",
        };
        Ok((cfg, w.optional_prefixes(&[prefix])))
    }
}

/// config.json of the benchmark shapes (the same numbers as bench/torch_bench.py's).
fn shape_config(name: &str) -> Result<serde_json::Value> {
    Ok(match name {
        // sentence-transformers/all-MiniLM-L6-v2
        "minilm" => serde_json::json!({
            "model_type": "bert", "vocab_size": 30522, "hidden_size": 384,
            "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
            "max_position_embeddings": 512, "hidden_act": "gelu"
        }),
        // distilbert-base-uncased
        "distilbert" => serde_json::json!({
            "model_type": "distilbert", "vocab_size": 30522, "dim": 768, "n_layers": 6,
            "n_heads": 12, "hidden_dim": 3072, "max_position_embeddings": 512,
            "activation": "gelu"
        }),
        other => anyhow::bail!("unknown --shape {other:?} (known: minilm, distilbert)"),
    })
}

/// Multiply-add FLOPs (x2) of one encoder forward over batch x seq tokens: the four attention
/// projections, the two feed-forward matmuls and the two attention products per layer. The
/// embeddings, norms and head are <1% and left out; a training step counts 3x (backward 2x).
pub fn encoder_flops(arch: &ArchConfig, batch: usize, seq: usize) -> f64 {
    let (h, i, layers) = match arch {
        ArchConfig::Bert(c) => (c.hidden_size, c.intermediate_size, c.num_hidden_layers),
        ArchConfig::DistilBert(c) => (c.dim, c.hidden_dim, c.n_layers),
    };
    let (h, i, s) = (h as f64, i as f64, seq as f64);
    let per_token = 2.0 * (4.0 * h * h + 2.0 * h * i) + 2.0 * 2.0 * s * h;
    per_token * (batch * seq) as f64 * layers as f64
}

/// Encoder inference (forward without gradients) on batch x seq tokens, plus mean pooling.
pub fn infer(
    src: &Source,
    batch: usize,
    seq: usize,
    iters: usize,
    int8: bool,
    prec: super::super::PrecisionArg,
) -> Result<InferResult> {
    let (cfg, w) = src.load(None)?;
    let w = w.configure(&super::super::load_options(int8, prec)?)?;
    let m = lmkit::models::Encoder::load(&w, &cfg.arch)?;
    let x = random_input(vocab_size(&cfg.arch), batch, seq)?;
    let times = time_median(2, iters, || {
        let h = m.forward(&x, false)?;
        let e = lmkit::models::bert::mean_pool(&h, &x.attention_mask)?;
        lmkit::embed::l2_normalize(&e)?;
        Ok(())
    })?;
    let median = times[times.len() / 2];
    let gflop = encoder_flops(&cfg.arch, batch, seq) / 1e9;
    Ok(InferResult {
        run: Run::new("infer"),
        model: src.name(),
        batch,
        seq,
        precision: precision(int8, prec),
        median_s: median,
        samples_per_s: batch as f64 / median,
        gflop,
        gflop_per_s: gflop / median,
        times_s: times,
    })
}

fn vocab_size(arch: &ArchConfig) -> usize {
    match arch {
        ArchConfig::Bert(c) => c.vocab_size,
        ArchConfig::DistilBert(c) => c.vocab_size,
    }
}

/// fp32 matrix multiply n x n by n x n: the machine's achievable matmul rate, for reading the
/// model benchmarks' GFLOP/s against.
pub fn gemm(
    (m, n, k): (usize, usize, usize),
    transpose_b: bool,
    iters: usize,
) -> Result<GemmResult> {
    let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
    let b = if transpose_b {
        // As a linear layer reads its (out, in) weight.
        Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)?.t()?
    } else {
        Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?
    };
    let times = time_median(1, iters, || {
        a.matmul(&b)?;
        Ok(())
    })?;
    let median = times[times.len() / 2];
    let gflop = 2.0 * (m * n * k) as f64 / 1e9;
    Ok(GemmResult {
        run: Run::new("gemm"),
        m,
        n,
        k,
        transpose_b,
        median_s: median,
        gflop_per_s: gflop / median,
        times_s: times,
    })
}

/// Tokenizing the emotion train split with batched map (batch_size 1000, padding to each
/// batch's longest, truncation), no cache: the `datasets` + fast tokenizer workload.
pub fn tokenize(model: &str, iters: usize) -> Result<TokenizeResult> {
    let tok = lmkit::tokenize::AutoTokenizer::from_pretrained(model)?;
    let d = lmkit::data::load_dataset("emotion")?;
    let train = d.split("train")?;
    let texts = train.column("text")?.as_str().unwrap_or_default().to_vec();
    let opts = lmkit::tokenize::EncodeOptions::default();
    let times = time_median(1, iters, || {
        let out = train.map(
            &lmkit::data::MapOptions {
                batch_size: Some(1000),
                fingerprint: None,
            },
            |b| {
                let t = b.column("text")?.as_str().unwrap_or_default();
                let e = tok.encode_batch(t, opts)?;
                Ok(vec![
                    lmkit::data::Field {
                        name: "input_ids".into(),
                        feature: lmkit::data::Feature::Sequence("int32".into()),
                        column: lmkit::data::Column::IntList(e.input_ids),
                    },
                    lmkit::data::Field {
                        name: "attention_mask".into(),
                        feature: lmkit::data::Feature::Sequence("int32".into()),
                        column: lmkit::data::Column::IntList(e.attention_mask),
                    },
                ])
            },
        )?;
        anyhow::ensure!(out.len() == texts.len());
        Ok(())
    })?;
    let median = times[times.len() / 2];
    Ok(TokenizeResult {
        run: Run::new("tokenize"),
        rows: texts.len(),
        median_s: median,
        rows_per_s: texts.len() as f64 / median,
        times_s: times,
    })
}

/// One training step (forward with dropout, cross-entropy, backward, AdamW) of the body
/// plus a new 6-way head on batch x seq random tokens (no padding), as `lmkit finetune` runs
/// it, or with the backward forced through candle's autograd.
pub fn train(
    src: &Source,
    batch: usize,
    seq: usize,
    dropout: f64,
    iters: usize,
    autograd: bool,
) -> Result<TrainResult> {
    use lmkit::models::AutoModelForSequenceClassification;
    let (cfg, w) = src.load(Some(dropout))?;
    let vocab = vocab_size(&cfg.arch);
    let flops = 3.0 * encoder_flops(&cfg.arch, batch, seq);
    let labels: Vec<String> = (0..6).map(|i| format!("LABEL_{i}")).collect();
    let m = AutoModelForSequenceClassification::from_weights(w.trainable(0), cfg, labels)?;
    let params = m.params();
    let mut opt = lmkit::nn::optim::AdamW::new(params.clone(), Default::default())?;
    let x = random_input(vocab, batch, seq)?;
    let y = Tensor::from_vec(
        (0..batch as u32).map(|i| i % 6).collect::<Vec<_>>(),
        batch,
        &Device::Cpu,
    )?;
    let times = time_median(2, iters, || {
        let (_loss, g) = if autograd {
            m.loss_and_grads_autograd(&x, &y, 1.0, &params)?
        } else {
            m.loss_and_grads(&x, &y, 1.0, &params)?
        };
        opt.step(&g, 5e-5)?;
        Ok(())
    })?;
    let median = times[times.len() / 2];
    Ok(TrainResult {
        run: Run::new("train"),
        model: src.name(),
        batch,
        seq,
        dropout,
        backward: if autograd { "autograd" } else { "default" },
        median_s: median,
        samples_per_s: batch as f64 / median,
        gflop: flops / 1e9,
        gflop_per_s: flops / 1e9 / median,
        times_s: times,
    })
}

/// The sentiment pipeline end to end (tokenize, batch by length, forward, softmax) on the
/// first `n` emotion test texts; `model` is any sequence-classification folder or id.
pub fn pipeline(
    model: &str,
    n: usize,
    batch: usize,
    iters: usize,
    int8: bool,
    prec: super::super::PrecisionArg,
) -> Result<PipelineResult> {
    let d = lmkit::data::load_dataset("emotion")?;
    let texts: Vec<String> = d
        .split("test")?
        .column("text")?
        .as_str()
        .unwrap_or_default()[..n]
        .to_vec();
    let mut p = lmkit::pipelines::TextClassificationPipeline::new(
        model,
        &super::super::load_options(int8, prec)?,
    )?;
    p.batch_size = batch;
    let times = time_median(1, iters, || {
        let out = p.call(&texts)?;
        anyhow::ensure!(out.len() == texts.len());
        Ok(())
    })?;
    let median = times[times.len() / 2];
    Ok(PipelineResult {
        model: model.to_string(),
        run: Run::new("pipeline"),
        sentences: texts.len(),
        batch,
        precision: precision(int8, prec),
        median_s: median,
        samples_per_s: texts.len() as f64 / median,
        times_s: times,
    })
}

/// Greedy generation with a GGUF decoder: prompt processing and new tokens timed apart
/// (the same prompt as bench/generate_bench.py).
pub fn generate(model: &str, new: usize, iters: usize) -> Result<GenerateResult> {
    use lmkit::generation::sampling::GenerationConfig;
    let mut p = lmkit::pipelines::text_generation::TextGenerationPipeline::new(model)?;
    let prompt = "Once upon a time, in a small village by the sea, there lived";
    let ids = p.prompt_ids(prompt, false)?;
    let cfg = GenerationConfig {
        max_new_tokens: new,
        ..Default::default()
    };
    lmkit::generation::sampling::generate(
        &mut p.model,
        &ids,
        &GenerationConfig {
            max_new_tokens: 4,
            ..cfg.clone()
        },
        |_| {},
    )?;
    let mut runs = vec![];
    for _ in 0..iters.max(1) {
        runs.push(lmkit::generation::sampling::generate(
            &mut p.model,
            &ids,
            &cfg,
            |_| {},
        )?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let tok = median(runs.iter().map(|g| g.tokens_per_second()).collect());
    let ptok = median(
        runs.iter()
            .map(|g| g.prompt_tokens as f64 / g.prompt_seconds.max(1e-9))
            .collect(),
    );
    Ok(GenerateResult {
        model: model.to_string(),
        iters,
        run: Run::new("generate"),
        prompt_tokens: ids.len(),
        new_tokens: runs[0].new_tokens,
        prompt_tok_per_s: ptok,
        tok_per_s: tok,
    })
}

/// Beam search with a seq2seq checkpoint: the same 41 input ids and settings as
/// bench/seq2seq_bench.py (exactly `new` new tokens: EOS banned until then).
pub fn seq2seq(dir: &str, beams: usize, new: usize, iters: usize) -> Result<Seq2seqResult> {
    use lmkit::generation::beam::{generate, SearchConfig};
    let model = lmkit::models::seq2seq::load_folder(std::path::Path::new(dir), &Device::Cpu)?;
    let mut ids: Vec<u32> = (100..140).collect();
    ids.push(1);
    let cfg = SearchConfig {
        num_beams: beams,
        max_new_tokens: Some(new),
        min_length: new + 1,
        ..SearchConfig::from_folder(std::path::Path::new(dir))?
    };
    generate(
        model.as_ref(),
        &ids,
        &SearchConfig {
            max_new_tokens: Some(4),
            min_length: 0,
            ..cfg.clone()
        },
    )?;
    let mut n = 0;
    let times = time_median(0, iters.max(1), || {
        n = generate(model.as_ref(), &ids, &cfg)?.ids.len() - 1;
        Ok(())
    })?;
    let median = times[times.len() / 2];
    Ok(Seq2seqResult {
        model: dir.to_string(),
        run: Run::new("seq2seq"),
        beams,
        new_tokens: n,
        median_s: median,
        tok_per_s: n as f64 / median,
    })
}
