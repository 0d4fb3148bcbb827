//! `lmkit serve`: the HTTP server (crate lmkit-serve) behind its flags.

use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use super::{at_least_1, positive};

#[derive(Parser)]
pub struct Args {
    /// A model to serve (store id, folder, run folder or .gguf file); repeat for several. Its
    /// kind is detected: embedding encoder, sequence classifier (an NLI one also serves
    /// zero-shot), GGUF LLM, seq2seq. Default: all-MiniLM-L6-v2, plus lmkit/sentiment-sst2 and
    /// SmolLM2-135M-Instruct when they are in the store.
    #[arg(long = "model")]
    models: Vec<String>,
    /// The address to bind. The default takes only local connections; 0.0.0.0 takes all.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port (0: any free one; the line "listening on ..." says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// int8 encoder projections: faster on the CPU, at a small quantization error.
    #[arg(long)]
    int8: bool,
    /// fp32, or bf16: bf16 operands with f32 sums on AMX or AVX512-BF16.
    #[arg(long, value_enum, default_value_t = super::PrecisionArg::Fp32)]
    precision: super::PrecisionArg,
    /// The most tokens a model's worker puts in one batch of waiting requests.
    #[arg(long, default_value_t = 16384, value_parser = at_least_1)]
    max_batch_tokens: usize,
    /// Inputs in flight at once over all requests (a batch request counts each input); past
    /// it requests get 429 with Retry-After.
    #[arg(long, default_value_t = 512, value_parser = at_least_1)]
    max_concurrent_requests: usize,
    /// Inputs in one request; past it, 413.
    #[arg(long, default_value_t = 32, value_parser = at_least_1)]
    max_client_batch_size: usize,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, env = "LMKIT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Cut inputs longer than the model takes instead of refusing them (422).
    #[arg(long)]
    auto_truncate: bool,
    /// Answer 408 to a request that takes longer than this many seconds.
    #[arg(long, value_parser = positive)]
    request_timeout: Option<f64>,
    /// The largest request body in bytes; past it, 413.
    #[arg(long, default_value_t = 2_000_000, value_parser = at_least_1)]
    payload_limit: usize,
    /// After SIGTERM or Ctrl-C, how many seconds requests in flight get to finish.
    #[arg(long, default_value_t = 30.0, value_parser = positive)]
    shutdown_timeout: f64,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = lmkit_serve::ServeConfig {
        models: a.models,
        precision: super::load_options(a.int8, a.precision)?.precision_of(),
        max_batch_tokens: a.max_batch_tokens,
        max_concurrent_requests: a.max_concurrent_requests,
        max_client_batch_size: a.max_client_batch_size,
        api_key: a.api_key.filter(|k| !k.is_empty()),
        auto_truncate: a.auto_truncate,
        request_timeout: a.request_timeout.map(Duration::from_secs_f64),
        payload_limit: a.payload_limit,
        shutdown_timeout: Duration::from_secs_f64(a.shutdown_timeout),
    };
    lmkit_serve::run(cfg, &a.host, a.port)
}
