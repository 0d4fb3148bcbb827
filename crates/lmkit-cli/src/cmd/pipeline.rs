//! `lmkit pipeline`: a task pipeline over texts (the encoder tasks through
//! `lmkit::pipelines::pipeline_with`, generation and seq2seq through their own pipelines).

use anyhow::{bail, Context, Result};

#[derive(clap::Args)]
pub struct Args {
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
    #[arg(long, value_parser = super::at_least_1)]
    top_k: Option<usize>,
    /// Generation: at most this many new tokens (default 64; a seq2seq checkpoint's own
    /// max_length when it has one).
    #[arg(long, value_parser = super::at_least_1)]
    max_new_tokens: Option<usize>,
    /// Seq2seq translation/summarization: beam search with this many beams (default: the
    /// checkpoint's generation settings).
    #[arg(long, value_parser = super::at_least_1)]
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
    #[arg(long, default_value_t = 0.0, value_parser = super::non_negative, allow_negative_numbers = true)]
    temperature: f64,
    /// Generation: nucleus sampling, keep the most likely tokens up to this probability mass.
    #[arg(long, value_parser = super::probability, allow_negative_numbers = true)]
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
    #[arg(long, default_value_t = 32, value_parser = super::at_least_1)]
    batch_size: usize,
    /// Encoder pipelines (classification, zero-shot, feature extraction): int8 encoder
    /// projections, faster on the CPU with a small quantization error (README).
    #[arg(long)]
    int8: bool,
    /// fp32, or bf16: bf16 operands with f32 sums on AMX or AVX512-BF16 (README, "CPU kernels").
    #[arg(long, value_enum, default_value_t = super::PrecisionArg::Fp32)]
    precision: super::PrecisionArg,
    texts: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    use lmkit::pipelines::{PipelineOptions, PipelineOutput, ZeroShotOptions};
    let texts = match &a.file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading texts from {}", f.display()))?;
            text.lines().map(String::from).collect()
        }
        None => super::texts_or_stdin(a.texts.clone())?,
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
    let mut p = lmkit::pipelines::pipeline_with(
        &a.task,
        a.model.as_deref(),
        &super::load_options(a.int8, a.precision)?,
    )?;
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
            // A per-text model (the default sentiment pipeline routes by script) stays.
            if v.get("model").is_none() {
                v["model"] = serde_json::Value::String(model.clone());
            }
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
                model,
            } => match top_k {
                Some(all) => {
                    println!("{text}");
                    for ls in all {
                        println!("  {:<20} {:.4}", ls.label, ls.score);
                    }
                }
                None => match model {
                    Some(m) => println!("{label:<12} {score:.4}  {text}  [{m}]"),
                    None => println!("{label:<12} {score:.4}  {text}"),
                },
            },
            PipelineOutput::ZeroShot(z) => {
                println!("{}", z.sequence);
                for (l, s) in z.labels.iter().zip(&z.scores) {
                    println!("  {l:<20} {s:.4}");
                }
            }
            PipelineOutput::Embedding { text, embedding } => {
                println!("{text}\n  {}", super::embed::vector_head(embedding));
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

fn run_prompted(a: &Args, texts: &[String]) -> Result<()> {
    use lmkit::pipelines::prompted::{default_model, PromptedPipeline};
    lmkit::pipelines::check_texts(texts)?;
    let model = match &a.model {
        Some(m) => m.clone(),
        None => default_model(&a.task, texts).to_string(),
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
    a: &Args,
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
fn run_text2text(a: &Args, texts: &[String], model: &str) -> Result<()> {
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

fn run_generation(a: &Args, prompts: &[String]) -> Result<()> {
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
        cancel: None,
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
