//! The course's fine-tuning chapter as one call: fetch the encoder, load and explore the data
//! set, tokenize, fine-tune with validation each epoch, evaluate the test split, and write a
//! run folder with the model, plots, logs, metrics.json and report.html.

pub mod recipes;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::{load_dataset, ClassLabel, Dataset, Feature};
use crate::metrics::Report;
use crate::models::{AutoModelForSequenceClassification, LoadOptions};
use crate::tokenize::{AutoTokenizer, EncodeOptions, Padding};
use crate::train::{evaluate, fit, TrainConfig};

/// The settings of a run (written to run_config.json).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FinetuneConfig {
    pub model: String,
    pub dataset: String,
    pub text_column: String,
    pub label_column: String,
    pub max_length: usize,
    /// Use only this many training examples (a seeded random subset).
    pub train_limit: Option<usize>,
    pub eval_split: String,
    pub output: PathBuf,
    pub train: TrainConfig,
    pub resume: bool,
    /// Write the EDA plots of the training split.
    pub eda: bool,
    /// Carve a seeded, stratified validation split of this fraction out of train (for data
    /// sets that ship only a train file, like SST-2).
    #[serde(default)]
    pub holdout: Option<f64>,
    /// Rename the classes (same count and order as the data set's), e.g. NEGATIVE/POSITIVE.
    #[serde(default)]
    pub label_names: Option<Vec<String>>,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            model: "sentence-transformers/all-MiniLM-L6-v2".into(),
            dataset: "emotion".into(),
            text_column: "text".into(),
            label_column: "label".into(),
            max_length: 128,
            train_limit: None,
            eval_split: "test".into(),
            output: PathBuf::from("runs/emotion-minilm"),
            train: TrainConfig::default(),
            resume: false,
            eda: true,
            holdout: None,
            label_names: None,
        }
    }
}

/// What a finished run reports.
pub struct RunSummary {
    pub report: Report,
    pub dir: PathBuf,
    pub model_dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub seconds: f64,
}

/// Tokenizes a split's text column for training (no padding: batches pad themselves).
pub fn encode_split(
    ds: &Dataset,
    tok: &AutoTokenizer,
    text_column: &str,
    max_length: usize,
) -> Result<Dataset> {
    ds.tokenize(
        tok,
        text_column,
        EncodeOptions {
            padding: Padding::None,
            max_length: Some(max_length),
            add_special_tokens: true,
        },
        Some(1000),
    )
}

/// Runs the whole workflow; prints progress to stderr.
pub fn run(cfg: &FinetuneConfig) -> Result<RunSummary> {
    let t0 = Instant::now();
    let out = &cfg.output;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    crate::util::write_atomic(
        &out.join("run_config.json"),
        serde_json::to_string_pretty(cfg)?.as_bytes(),
    )?;

    eprintln!("[1/6] model: {}", cfg.model);
    let model_dir = crate::hub::resolve(&cfg.model)?;
    eprintln!("[2/6] data set: {}", cfg.dataset);
    let mut data = load_dataset(&cfg.dataset)?;
    if let Some(f) = cfg.holdout {
        let parts =
            data.split("train")?
                .train_test_split(f, cfg.train.seed, Some(&cfg.label_column))?;
        eprintln!(
            "      held out {} of {} train examples as the validation split (seed {})",
            parts["test"].len(),
            data["train"].len(),
            cfg.train.seed
        );
        data.splits.insert("train".into(), parts["train"].clone());
        data.splits
            .insert("validation".into(), parts["test"].clone());
    }
    // The trainer reads labels from "label": copy another label column there (renamed
    // classes, when asked, go into its ClassLabel).
    let relabel = |d: &Dataset| -> Result<Dataset> {
        let mut col = d.field(&cfg.label_column)?.clone();
        if let Some(names) = &cfg.label_names {
            let Feature::ClassLabel(cl) = &col.feature else {
                bail!(
                    "label_names: column {:?} is not a ClassLabel",
                    cfg.label_column
                )
            };
            if cl.names.len() != names.len() {
                bail!(
                    "label_names: {} names given, but {:?} has {} classes ({})",
                    names.len(),
                    cfg.label_column,
                    cl.names.len(),
                    cl.names.join(", ")
                )
            }
            col.feature = Feature::ClassLabel(ClassLabel::new(names.clone()));
        }
        d.clone().with_column("label", col.feature, col.column)
    };
    let mut train = relabel(data.split("train")?)?;
    let val = data.split("validation").ok().map(relabel).transpose()?;
    let test = data.split(&cfg.eval_split)?.clone();
    let test_labelled = relabel(&test)?;
    let classes = train.class_label("label")?.names.clone();
    // A label id must mean the same class in every split, or the metrics are silently wrong.
    for (name, d) in [
        ("validation", val.as_ref()),
        (cfg.eval_split.as_str(), Some(&test_labelled)),
    ] {
        if let Some(d) = d {
            let theirs = d.class_label("label")?.names.clone();
            if theirs != classes {
                bail!(
                    "the {name} split's classes ({}) are not train's ({}): an id would mean \
                     another class there. Give every split the same label names",
                    theirs.join(", "),
                    classes.join(", ")
                )
            }
        }
    }
    if let Some(n) = cfg.train_limit {
        let idx: Vec<usize> = (0..n.min(train.len())).collect();
        train = train.shuffle(cfg.train.seed)?.select(&idx)?;
    }
    let mut files = vec![];
    if cfg.eda {
        files.extend(crate::data::eda::write_plots(
            &train,
            &cfg.text_column,
            "label",
            &out.join("plots"),
        )?);
    }
    eprintln!(
        "[3/6] tokenize ({} train, max_length {})",
        train.len(),
        cfg.max_length
    );
    let tok = AutoTokenizer::from_folder(&model_dir)?;
    let train_enc = encode_split(&train, &tok, &cfg.text_column, cfg.max_length)?;
    let val_enc = val
        .as_ref()
        .map(|v| encode_split(v, &tok, &cfg.text_column, cfg.max_length))
        .transpose()?;
    let test_enc = encode_split(&test_labelled, &tok, &cfg.text_column, cfg.max_length)?;

    eprintln!(
        "[4/6] fine-tune {} epochs, batch {}, lr {}",
        cfg.train.epochs, cfg.train.batch_size, cfg.train.optimizer.lr
    );
    let model = AutoModelForSequenceClassification::load(
        &model_dir,
        Some(classes.clone()),
        &LoadOptions::training(cfg.train.seed),
    )?;
    let outcome = fit(
        &model,
        &train_enc,
        val_enc.as_ref(),
        &cfg.train,
        out,
        cfg.resume,
        tok.pad_token_id,
    )?;
    let final_dir = out.join("model");
    model.save_pretrained(&final_dir)?;
    if outcome.reason == "max_steps" {
        return Err(anyhow!(
            "stopped at step {} (max_steps); resume with --resume to finish",
            outcome.state.global_step
        ));
    }

    eprintln!("[5/6] evaluate the {} split", cfg.eval_split);
    let (pred, report) = evaluate(
        &model,
        &test_enc,
        cfg.train.eval_batch_size,
        "label",
        tok.pad_token_id,
    )?;
    files.extend(write_eval_outputs(
        out,
        &report,
        &pred.predicted,
        &test,
        &cfg.text_column,
    )?);
    files.extend(crate::plot::save(
        &crate::train::curves_chart(&outcome.state.history),
        &out.join("plots").join("training_curves"),
    )?);
    let seconds = t0.elapsed().as_secs_f64();
    let metrics = serde_json::json!({
        "split": cfg.eval_split,
        "accuracy": report.accuracy,
        "f1_macro": report.f1_macro(),
        "f1_weighted": report.f1_weighted(),
        "loss": pred.loss,
        "report": report,
        "history": outcome.state.history,
        "stopped": outcome.reason,
        "wall_seconds": seconds,
        "model": cfg.model,
        "dataset": cfg.dataset,
    });
    crate::util::write_atomic(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)?.as_bytes(),
    )?;
    eprintln!("[6/6] report");
    let html = crate::finetune::report::html(cfg, &report, &outcome.state.history, seconds)?;
    crate::util::write_atomic(&out.join("report.html"), html.as_bytes())?;
    files.push(out.join("report.html"));
    files.push(out.join("metrics.json"));
    Ok(RunSummary {
        report,
        dir: out.clone(),
        model_dir: final_dir,
        files,
        seconds,
    })
}

/// Confusion-matrix plot and predictions file for an evaluated split.
pub fn write_eval_outputs(
    out: &Path,
    report: &Report,
    predicted: &[usize],
    ds: &Dataset,
    text_column: &str,
) -> Result<Vec<PathBuf>> {
    let names: Vec<String> = report.classes.iter().map(|(n, _)| n.clone()).collect();
    let mut files = crate::plot::save(
        &crate::plot::ConfusionMatrixChart {
            title: "Confusion matrix".into(),
            labels: names.clone(),
            matrix: report.confusion_matrix.clone(),
        },
        &out.join("plots").join("confusion_matrix"),
    )?;
    let texts = ds.column(text_column)?.as_str().unwrap_or_default();
    let mut lines = String::new();
    for (i, &p) in predicted.iter().enumerate() {
        let v = serde_json::json!({"text": texts.get(i), "predicted": names[p]});
        lines.push_str(&v.to_string());
        lines.push('\n');
    }
    let p = out.join("predictions.jsonl");
    crate::util::write_atomic(&p, lines.as_bytes())?;
    files.push(p);
    Ok(files)
}
