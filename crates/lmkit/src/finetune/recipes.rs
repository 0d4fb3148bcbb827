//! Models lmkit makes itself. No SST-2 (or other task) checkpoint can be downloaded on these
//! machines, so the sentiment pipeline's default is fine-tuned here from a fetched encoder by
//! a fixed, seeded recipe and kept in the model store like any fetched model.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::finetune::FinetuneConfig;
use crate::hub::TrainedModel;
use crate::nn::optim::AdamWConfig;
use crate::nn::optim::Schedule;
use crate::train::TrainConfig;

/// The fine-tuning settings that make each trained catalogue model ([`crate::hub::TRAINED_MODELS`]).
pub fn config(id: &str) -> Option<FinetuneConfig> {
    match id {
        "lmkit/sentiment-sst2" => Some(sentiment_sst2()),
        "lmkit/sentiment-nsmc" => Some(sentiment_nsmc()),
        _ => None,
    }
}

/// Registers [`build`] with the store, so `hub::fetch` can build trained models.
pub fn register() {
    crate::hub::register_builder(build);
}

/// The recipe of `lmkit/sentiment-sst2`: one epoch over 95% of SST-2's 67,349 training phrases
/// (the other 5%, stratified, seed 42, is the validation split it is scored on), AdamW 1e-4
/// with 6% linear warm-up then linear decay, batch 64, length-bucketed batches.
fn sentiment_sst2() -> FinetuneConfig {
    FinetuneConfig {
        model: "sentence-transformers/all-MiniLM-L6-v2".into(),
        dataset: "sst2".into(),
        text_column: "sentence".into(),
        label_column: "label".into(),
        max_length: 128,
        train_limit: None,
        eval_split: "validation".into(),
        output: PathBuf::new(),
        resume: false,
        eda: false,
        holdout: Some(0.05),
        label_names: Some(vec!["NEGATIVE".into(), "POSITIVE".into()]),
        train: TrainConfig {
            epochs: 1,
            batch_size: 64,
            optimizer: AdamWConfig {
                lr: 1e-4,
                weight_decay: 0.01,
                ..Default::default()
            },
            schedule: Schedule::Linear,
            warmup_ratio: 0.06,
            seed: 42,
            // The recipe owns its run folder: a rebuild (`fetch --force`) starts it over.
            overwrite: true,
            ..Default::default()
        },
    }
}

/// The recipe of `lmkit/sentiment-nsmc`, the Korean sentiment default: multilingual-e5-small
/// fine-tuned for one epoch on a seeded 40,000-review subset of NSMC's train.tsv, with 5% of
/// train (stratified, seed 42) held out as the validation split it is chosen and scored on;
/// test.tsv is not looked at. AdamW 1e-4, 6% linear warm-up then linear decay, batch 64.
fn sentiment_nsmc() -> FinetuneConfig {
    let mut cfg = sentiment_sst2();
    cfg.model = "intfloat/multilingual-e5-small".into();
    cfg.dataset = "nsmc".into();
    cfg.text_column = "document".into();
    cfg.train_limit = Some(40_000);
    cfg
}

/// Runs a recipe and installs its model in the store (a no-op when present, unless `force`).
/// The run folder (logs, plots, report.html, metrics.json) stays in `$LMKIT_HOME/runs/`;
/// `train_limit` trains on a subset (a quicker, weaker model: for tests).
pub fn build(r: &TrainedModel, force: bool, train_limit: Option<usize>) -> Result<PathBuf> {
    let dest = crate::hub::store_path(r.id);
    // A test's subset build (train_limit) stands in only until the real model is asked for.
    let subset = crate::util::read_json_if_exists(&dest.join("lmkit-source.json"))
        .map(|v| !v["train_limit"].is_null())
        .unwrap_or(false);
    let wanted = !(subset && train_limit.is_none());
    if dest.join("config.json").is_file()
        && !force
        && wanted
        && crate::hub::check_sizes(&dest).is_ok()
    {
        return Ok(dest);
    }
    let run_dir = crate::hub::home()
        .join("runs")
        .join(r.id.replace('/', "--"));
    build_at(r, &dest, &run_dir, train_limit)
}

/// Runs a recipe with its run folder at `run_dir` and installs the model folder at `dest`
/// (replacing what is there only once the new one is complete).
pub fn build_at(
    r: &TrainedModel,
    dest: &std::path::Path,
    run_dir: &std::path::Path,
    train_limit: Option<usize>,
) -> Result<PathBuf> {
    let mut cfg = config(r.id)
        .ok_or_else(|| anyhow::anyhow!("no recipe for {} in finetune::recipes", r.id))?;
    // A test's smaller subset replaces the recipe's.
    cfg.train_limit = train_limit.or(cfg.train_limit);
    cfg.output = run_dir.to_path_buf();
    eprintln!(
        "building {} by fine-tuning {} on {} (about {} min on 2 cores); run folder {}",
        r.id,
        cfg.model,
        cfg.dataset,
        r.minutes,
        cfg.output.display()
    );
    let summary = crate::finetune::run(&cfg)?;
    let prov = serde_json::json!({
        "id": r.id,
        "built_by": format!("lmkit {} recipe", env!("CARGO_PKG_VERSION")),
        "recipe": cfg,
        "eval_split": cfg.eval_split,
        "accuracy": summary.report.accuracy,
        "f1_macro": summary.report.f1_macro(),
        "wall_seconds": summary.seconds,
        "run_folder": cfg.output,
        "train_limit": train_limit,
    });
    crate::hub::install(dest, &prov, |out| {
        for entry in std::fs::read_dir(&summary.model_dir)? {
            let p = entry?.path();
            if p.is_file() {
                std::fs::copy(&p, out.join(p.file_name().unwrap()))
                    .with_context(|| format!("copying {}", p.display()))?;
            }
        }
        Ok(())
    })?;
    eprintln!(
        "{}: {} accuracy {:.4} ({} examples)",
        r.id, cfg.eval_split, summary.report.accuracy, summary.report.macro_avg.support
    );
    Ok(dest.to_path_buf())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_trained_catalogue_model_has_a_recipe() {
        for m in crate::hub::TRAINED_MODELS {
            assert!(super::config(m.id).is_some(), "{} has no recipe", m.id);
        }
    }
}
