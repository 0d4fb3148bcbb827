//! `lmkit evaluate`: confusion matrix and classification report of a run or model on a split.

use anyhow::{bail, Result};
use lmkit::prelude::*;

/// Truncation when neither `--max-length` nor the run's run_config.json gives one.
const DEFAULT_MAX_LENGTH: usize = 128;

#[derive(clap::Args)]
pub struct Args {
    /// A run folder (runs/<name>) or a model folder.
    target: String,
    #[arg(long, default_value = "test")]
    split: String,
    /// The data set (default: the run's).
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long)]
    json: bool,
    /// Truncate texts to this many tokens (default: the run's max_length, else 128).
    #[arg(long, value_parser = super::token_length)]
    max_length: Option<usize>,
    /// int8 encoder projections (the run's saved fp32 evaluation is left as it is).
    #[arg(long)]
    int8: bool,
    /// fp32, or bf16: bf16 operands with f32 sums on AMX or AVX512-BF16 (README, "CPU kernels").
    #[arg(long, value_enum, default_value_t = super::PrecisionArg::Fp32)]
    precision: super::PrecisionArg,
}

/// A run folder (with model/ and run_config.json) or a model folder. What the command line
/// says wins; the run's saved settings fill in the rest.
pub fn run(a: Args) -> Result<()> {
    let (target, split, int8) = (a.target.as_str(), a.split.as_str(), a.int8);
    let t = std::path::Path::new(target);
    let run_cfg: Option<serde_json::Value> = std::fs::read_to_string(t.join("run_config.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let saved = |key: &str| run_cfg.as_ref().map(|c| c[key].clone());
    let model_dir = lmkit::pipelines::model_dir(target)?;
    let dataset = a
        .dataset
        .or_else(|| saved("dataset").and_then(|v| v.as_str().map(String::from)))
        .ok_or_else(|| {
            anyhow::anyhow!("which data set? pass --dataset (no run_config.json in {target})")
        })?;
    let text_col = saved("text_column")
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or("text".into());
    let max_length = a
        .max_length
        .or_else(|| {
            saved("max_length")
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
        })
        .unwrap_or(DEFAULT_MAX_LENGTH);
    let model = AutoModelForSequenceClassification::load(
        &model_dir,
        None,
        &super::load_options(int8, a.precision)?,
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
    if a.json {
        println!(
            "{}",
            serde_json::json!({"split": split, "precision": if int8 { "int8" } else if a.precision == super::PrecisionArg::Bf16 { "bf16" } else { "fp32" }, "accuracy": report.accuracy, "f1_macro": report.f1_macro(),
            "f1_weighted": report.f1_weighted(), "loss": pred.loss, "report": report})
        );
    } else {
        println!("Confusion matrix ({split} split; rows: true, columns: predicted)\n");
        println!("{}", report.confusion_table());
        println!("{report}");
    }
    if t.join("model").is_dir() && !int8 && a.precision == super::PrecisionArg::Fp32 {
        lmkit::finetune::write_eval_outputs(t, &report, &pred.predicted, ds, &text_col)?;
    }
    Ok(())
}
