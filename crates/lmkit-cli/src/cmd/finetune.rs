//! `lmkit finetune`: fine-tune an encoder on a labelled data set, evaluate, report.

use std::path::PathBuf;

use anyhow::Result;
use lmkit::finetune::FinetuneConfig;
use lmkit::train::{EarlyStopping, TrainConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Pretrained encoder (id or folder).
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    model: String,
    /// Data set name (emotion, sst2), file or folder of splits.
    #[arg(long, default_value = "emotion")]
    dataset: String,
    #[arg(long, default_value_t = 5, value_parser = super::at_least_1)]
    epochs: usize,
    #[arg(long, default_value_t = 64, value_parser = super::at_least_1)]
    batch_size: usize,
    #[arg(long, default_value_t = 5e-5, value_parser = super::positive, allow_negative_numbers = true)]
    lr: f64,
    #[arg(long, default_value_t = 0.0, value_parser = super::non_negative, allow_negative_numbers = true)]
    weight_decay: f64,
    /// constant, linear or cosine (after warm-up).
    #[arg(long, default_value = "constant", value_parser = ["constant", "linear", "cosine"])]
    schedule: String,
    #[arg(long, default_value_t = 0.0, value_parser = super::fraction, allow_negative_numbers = true)]
    warmup_ratio: f64,
    #[arg(long, value_parser = super::positive, allow_negative_numbers = true)]
    max_grad_norm: Option<f64>,
    #[arg(long, default_value_t = 1, value_parser = super::at_least_1)]
    grad_accum: usize,
    /// Truncate texts to this many tokens.
    #[arg(long, default_value_t = 128, value_parser = super::token_length)]
    max_length: usize,
    /// Train on a seeded random subset of this many examples.
    #[arg(long, value_parser = super::at_least_1)]
    train_limit: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run folder (default runs/<dataset>-<model name>).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Continue from the newest checkpoint in the run folder (with the settings it started
    /// with: a changed one is refused, naming it).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start over in a run folder that holds an earlier run's checkpoints, deleting them
    /// (without it such a folder is refused, so two runs never mix).
    #[arg(long)]
    overwrite: bool,
    /// A checkpoint every this many optimizer steps, besides each epoch's end (default: four
    /// per epoch).
    #[arg(long, value_parser = super::at_least_1)]
    save_steps: Option<usize>,
    /// Checkpoints kept, newest first.
    #[arg(long, default_value_t = 2, value_parser = super::at_least_1)]
    save_total_limit: usize,
    /// Stop after this many optimizer steps (writes a checkpoint; finish with --resume).
    #[arg(long, value_parser = super::at_least_1)]
    max_steps: Option<usize>,
    /// Early stopping on val_loss, val_accuracy, val_f1_macro or val_f1_weighted.
    #[arg(long, value_parser = ["val_loss", "val_accuracy", "val_f1_macro", "val_f1_weighted"])]
    early_stopping: Option<String>,
    #[arg(long, default_value_t = 2, value_parser = super::at_least_1)]
    patience: usize,
    /// Batch examples in random order without grouping by length.
    #[arg(long)]
    no_bucketing: bool,
    #[arg(long, default_value = "test")]
    eval_split: String,
    /// Hold out this fraction of train (stratified, seeded) as the validation split.
    #[arg(long, value_parser = super::open_fraction, allow_negative_numbers = true)]
    holdout: Option<f64>,
    #[arg(long, default_value = "text")]
    text_column: String,
    #[arg(long, default_value = "label")]
    label_column: String,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

pub fn run(a: Args) -> Result<()> {
    let short = a.model.rsplit('/').next().unwrap_or(&a.model).to_string();
    let ds_short = std::path::Path::new(&a.dataset)
        .file_stem()
        .map_or(a.dataset.clone(), |s| s.to_string_lossy().to_string());
    let cfg = FinetuneConfig {
        output: a
            .output
            .unwrap_or_else(|| PathBuf::from("runs").join(format!("{ds_short}-{short}"))),
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
            overwrite: a.overwrite,
            save_steps: a.save_steps,
            save_total_limit: a.save_total_limit,
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
