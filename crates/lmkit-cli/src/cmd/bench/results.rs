//! What each benchmark measured. The serialised field names and order are what
//! bench/compare.sh and bench/results/*.jsonl hold (the same as the Python side's); fields
//! marked `skip` only feed the human-readable line.

use std::fmt;

use serde::Serialize;

/// Always "lmkit": the Python side writes "torch" and compare.sh groups on it.
pub const IMPL: &str = "lmkit";

/// "int8", "bf16" or "fp32", as the Python side names precisions.
pub fn precision(int8: bool, p: super::super::PrecisionArg) -> &'static str {
    match (int8, p) {
        (true, _) => "int8",
        (false, super::super::PrecisionArg::Bf16) => "bf16",
        (false, super::super::PrecisionArg::Fp32) => "fp32",
    }
}

/// What every result carries: which implementation ran, what, on which kernel paths and how
/// many threads, and the peak memory of the process.
#[derive(Debug, Serialize)]
pub struct Run {
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    pub task: &'static str,
    /// The kernel paths `nn::kernels::isa` chose (`LMKIT_ISA` caps them).
    pub isa: String,
    pub threads: usize,
    pub peak_rss_mib: f64,
}

impl Run {
    /// Taken when the work is done, so the peak memory includes it.
    pub fn new(task: &'static str) -> Self {
        Self {
            implementation: IMPL,
            task,
            isa: lmkit::nn::kernels::isa::features().name(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            peak_rss_mib: super::workloads::peak_rss_mib(),
        }
    }
}

/// `lmkit bench infer`: encoder forward + mean pooling.
#[derive(Debug, Serialize)]
pub struct InferResult {
    #[serde(flatten)]
    pub run: Run,
    pub model: String,
    pub batch: usize,
    pub seq: usize,
    pub precision: &'static str,
    pub median_s: f64,
    pub samples_per_s: f64,
    pub gflop: f64,
    pub gflop_per_s: f64,
    pub times_s: Vec<f64>,
}

impl fmt::Display for InferResult {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "infer {}{}: batch {} x {}: {:.1} samples/s (median {:.3} s, {:.1} GFLOP/s), peak RSS {:.0} MiB",
            self.model,
            match self.precision {
                "int8" => " (int8)",
                "bf16" => " (bf16)",
                _ => "",
            },
            self.batch,
            self.seq,
            self.samples_per_s,
            self.median_s,
            self.gflop_per_s,
            self.run.peak_rss_mib
        )
    }
}

/// `lmkit bench gemm`: one fp32 matmul, M x K times K x N.
#[derive(Debug, Serialize)]
pub struct GemmResult {
    #[serde(flatten)]
    pub run: Run,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub transpose_b: bool,
    pub median_s: f64,
    pub gflop_per_s: f64,
    pub times_s: Vec<f64>,
}

impl fmt::Display for GemmResult {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let (m, n, k) = (self.m, self.n, self.k);
        write!(
            f,
            "gemm f32 {m}x{k} . {k}x{n}: {:.1} GFLOP/s (median {:.3} s)",
            self.gflop_per_s, self.median_s
        )
    }
}

/// `lmkit bench tokenize`: batched map over the emotion train split.
#[derive(Debug, Serialize)]
pub struct TokenizeResult {
    #[serde(flatten)]
    pub run: Run,
    pub rows: usize,
    pub median_s: f64,
    pub rows_per_s: f64,
    pub times_s: Vec<f64>,
}

impl fmt::Display for TokenizeResult {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "tokenize emotion train ({} rows): {:.0} rows/s (median {:.3} s)",
            self.rows, self.rows_per_s, self.median_s
        )
    }
}

/// `lmkit bench train`: one optimizer step.
#[derive(Debug, Serialize)]
pub struct TrainResult {
    #[serde(flatten)]
    pub run: Run,
    pub model: String,
    pub batch: usize,
    pub seq: usize,
    pub dropout: f64,
    /// "autograd" or "default".
    pub backward: &'static str,
    pub median_s: f64,
    pub samples_per_s: f64,
    pub gflop: f64,
    pub gflop_per_s: f64,
    pub times_s: Vec<f64>,
}

impl fmt::Display for TrainResult {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "train {}: batch {} x {}, dropout {}: {:.1} samples/s (median {:.3} s, {:.1} GFLOP/s), peak RSS {:.0} MiB",
            self.model,
            self.batch,
            self.seq,
            self.dropout,
            self.samples_per_s,
            self.median_s,
            self.gflop_per_s,
            self.run.peak_rss_mib
        )
    }
}

/// `lmkit bench pipeline`: the sentiment pipeline end to end.
#[derive(Debug, Serialize)]
pub struct PipelineResult {
    #[serde(skip)]
    pub model: String,
    #[serde(flatten)]
    pub run: Run,
    pub sentences: usize,
    pub batch: usize,
    pub precision: &'static str,
    pub median_s: f64,
    pub samples_per_s: f64,
    pub times_s: Vec<f64>,
}

impl fmt::Display for PipelineResult {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "sentiment pipeline {}: {} sentences, batch {}: {:.1} sentences/s (median {:.3} s)",
            self.model, self.sentences, self.batch, self.samples_per_s, self.median_s
        )
    }
}

/// `lmkit bench generate`: greedy decoding, prompt and new tokens timed apart.
#[derive(Debug, Serialize)]
pub struct GenerateResult {
    #[serde(skip)]
    pub model: String,
    #[serde(skip)]
    pub iters: usize,
    #[serde(flatten)]
    pub run: Run,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub prompt_tok_per_s: f64,
    pub tok_per_s: f64,
}

impl fmt::Display for GenerateResult {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "generate {}: {} prompt tokens at {:.1} tok/s, {} new tokens at {:.1} tok/s (median of {})",
            self.model,
            self.prompt_tokens,
            self.prompt_tok_per_s,
            self.new_tokens,
            self.tok_per_s,
            self.iters
        )
    }
}

/// `lmkit bench seq2seq`: beam search with a fixed number of new tokens.
#[derive(Debug, Serialize)]
pub struct Seq2seqResult {
    #[serde(skip)]
    pub model: String,
    #[serde(flatten)]
    pub run: Run,
    pub beams: usize,
    pub new_tokens: usize,
    pub median_s: f64,
    pub tok_per_s: f64,
}

impl fmt::Display for Seq2seqResult {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "seq2seq {}: {} beams, {} new tokens in {:.3} s: {:.1} tok/s",
            self.model, self.beams, self.new_tokens, self.median_s, self.tok_per_s
        )
    }
}
