//! `lmkit bench`: times lmkit alone on a fixed shape (bench/compare.sh runs it beside PyTorch).
//! Each workload returns a typed result: `--json` prints it as one JSON object (the fields
//! bench/compare.sh reads), otherwise its one-line summary.

mod results;
mod workloads;

use anyhow::Result;

use workloads::Source;

/// The encoder and the batch shape of `train` and `infer`.
#[derive(clap::Args)]
pub struct EncoderArgs {
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    model: String,
    /// Random weights of this shape instead of --model: minilm or distilbert.
    #[arg(long)]
    shape: Option<String>,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 48)]
    seq: usize,
}

#[derive(clap::Subcommand)]
pub enum Task {
    /// One training step (forward, loss, backward, AdamW) with a new 6-way head.
    Train {
        #[command(flatten)]
        encoder: EncoderArgs,
        #[arg(long, default_value_t = 0.1)]
        dropout: f64,
        #[arg(long, default_value_t = 5)]
        iters: usize,
        /// Backward by candle's autograd even where a written-out backward exists (BERT on
        /// the CPU): to measure what that buys.
        #[arg(long)]
        autograd: bool,
        #[arg(long)]
        json: bool,
    },
    /// Tokenize the emotion train split with batched map (bench/compare.sh tokenize).
    Tokenize {
        #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
        model: String,
        #[arg(long, default_value_t = 3)]
        iters: usize,
        #[arg(long)]
        json: bool,
    },
    /// Encoder inference + mean pooling (embeddings) on random ids, no padding.
    Infer {
        #[command(flatten)]
        encoder: EncoderArgs,
        #[arg(long, default_value_t = 10)]
        iters: usize,
        /// int8 encoder projections (weights per channel, activations per token; nn::kernels::int8).
        #[arg(long)]
        int8: bool,
        /// fp32, or bf16 (AMX / AVX512-BF16; nn::kernels::bf16).
        #[arg(long, value_enum, default_value_t = super::PrecisionArg::Fp32)]
        precision: super::PrecisionArg,
        /// One JSON object: samples_per_s, median_s, peak_rss_mib, ...
        #[arg(long)]
        json: bool,
    },
    /// fp32 matmul n x n x n: the matmul rate this machine reaches (GFLOP/s).
    Gemm {
        #[arg(long, default_value_t = 2048)]
        n: usize,
        /// A rectangular product instead: M,N,K (M x K times K x N).
        #[arg(long, value_parser = parse_mnk)]
        mnk: Option<(usize, usize, usize)>,
        /// Read the right operand transposed, as linear layers read their (out, in) weights.
        #[arg(long)]
        transpose_b: bool,
        #[arg(long, default_value_t = 5)]
        iters: usize,
        #[arg(long)]
        json: bool,
    },
    /// Greedy text generation with a GGUF decoder: prompt tokens/s and new tokens/s.
    Generate {
        #[arg(long, default_value = "HuggingFaceTB/SmolLM2-135M-Instruct")]
        model: String,
        /// New tokens per run.
        #[arg(long, default_value_t = 64)]
        new: usize,
        #[arg(long, default_value_t = 3)]
        iters: usize,
        #[arg(long)]
        json: bool,
    },
    /// Beam search with a seq2seq checkpoint folder (Marian, BART, T5).
    Seq2seq {
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 4)]
        beams: usize,
        /// Exactly this many new tokens per run.
        #[arg(long, default_value_t = 32)]
        new: usize,
        #[arg(long, default_value_t = 3)]
        iters: usize,
        #[arg(long)]
        json: bool,
    },
    /// The sentiment pipeline end to end on emotion test sentences.
    Pipeline {
        /// A sequence-classification model (default: lmkit/sentiment-sst2).
        #[arg(long, default_value = "lmkit/sentiment-sst2")]
        model: String,
        #[arg(long, default_value_t = 1000)]
        sentences: usize,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 3)]
        iters: usize,
        /// int8 encoder projections.
        #[arg(long)]
        int8: bool,
        /// fp32, or bf16 (AMX / AVX512-BF16; nn::kernels::bf16).
        #[arg(long, value_enum, default_value_t = super::PrecisionArg::Fp32)]
        precision: super::PrecisionArg,
        #[arg(long)]
        json: bool,
    },
}

/// Runs one benchmark and prints its result.
pub fn run(task: Task) -> Result<()> {
    match task {
        Task::Train {
            encoder: e,
            dropout,
            iters,
            autograd,
            json,
        } => {
            let src = Source::new(e.model, e.shape);
            emit(
                &workloads::train(&src, e.batch, e.seq, dropout, iters, autograd)?,
                json,
            )
        }
        Task::Gemm {
            n,
            mnk,
            transpose_b,
            iters,
            json,
        } => emit(
            &workloads::gemm(mnk.unwrap_or((n, n, n)), transpose_b, iters)?,
            json,
        ),
        Task::Pipeline {
            model,
            sentences,
            batch,
            iters,
            int8,
            precision,
            json,
        } => emit(
            &workloads::pipeline(&model, sentences, batch, iters, int8, precision)?,
            json,
        ),
        Task::Generate {
            model,
            new,
            iters,
            json,
        } => emit(&workloads::generate(&model, new, iters)?, json),
        Task::Seq2seq {
            model,
            beams,
            new,
            iters,
            json,
        } => emit(&workloads::seq2seq(&model, beams, new, iters)?, json),
        Task::Tokenize { model, iters, json } => emit(&workloads::tokenize(&model, iters)?, json),
        Task::Infer {
            encoder: e,
            iters,
            int8,
            precision,
            json,
        } => {
            let src = Source::new(e.model, e.shape);
            emit(
                &workloads::infer(&src, e.batch, e.seq, iters, int8, precision)?,
                json,
            )
        }
    }
}

/// One JSON object (`--json`) or the human-readable line.
fn emit<R: serde::Serialize + std::fmt::Display>(r: &R, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!("{r}");
    }
    Ok(())
}

fn parse_mnk(s: &str) -> std::result::Result<(usize, usize, usize), String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("--mnk {s:?}: {e} (expected M,N,K)"))?;
    match v[..] {
        [m, n, k] if m > 0 && n > 0 && k > 0 => Ok((m, n, k)),
        _ => Err(format!(
            "--mnk {s:?}: expected three positive numbers M,N,K"
        )),
    }
}
