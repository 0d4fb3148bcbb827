//! Fine-tuning a sequence classifier (Keras' `model.fit(train, validation_data=val, epochs)`):
//! AdamW, schedules, clipping, accumulation, validation each epoch, early stopping, progress,
//! JSONL logs, atomic checkpoints and exact resume.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, D};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::batches::{batches, lengths, make_batch, BatchOptions};
use crate::data::Dataset;
use crate::metrics::{classification_report, Report};
use crate::models::AutoModelForSequenceClassification;
use crate::nn::cross_entropy;
use crate::nn::optim::{accumulate, clip_grad_norm, AdamW, AdamWConfig, Grads, Schedule};

/// Everything that shapes a run. Defaults are the course's: Adam 5e-5, batch 64, 5 epochs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: AdamWConfig,
    pub schedule: Schedule,
    /// Fraction of all optimizer steps spent warming up.
    pub warmup_ratio: f64,
    /// Clip the global gradient norm to this (None: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Batches per optimizer step.
    pub grad_accum: usize,
    pub seed: u64,
    /// Batch similar lengths together (less padding, same data each epoch).
    pub bucket_by_length: bool,
    /// Stop after this many optimizer steps (a checkpoint is written there).
    pub max_steps: Option<usize>,
    /// Stop when this validation metric has not improved for `patience` epochs.
    pub early_stopping: Option<EarlyStopping>,
    pub eval_batch_size: usize,
    /// Show progress: a bar on a terminal, else a plain line every few seconds.
    pub progress: bool,
    /// Start over in a folder that holds another run's checkpoints (deleting them); without
    /// it a fresh run there is refused, so two runs never mix.
    #[serde(default)]
    pub overwrite: bool,
    /// A checkpoint every this many optimizer steps, besides each epoch's end (None: four per
    /// epoch, so a kill loses a quarter of an epoch at most).
    #[serde(default)]
    pub save_steps: Option<usize>,
    /// Checkpoints kept, newest first (transformers' `save_total_limit`).
    #[serde(default = "default_save_total_limit")]
    pub save_total_limit: usize,
}

fn default_save_total_limit() -> usize {
    2
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 64,
            optimizer: AdamWConfig::default(),
            schedule: Schedule::Constant,
            warmup_ratio: 0.0,
            max_grad_norm: None,
            grad_accum: 1,
            seed: 42,
            bucket_by_length: true,
            max_steps: None,
            early_stopping: None,
            eval_batch_size: 128,
            progress: true,
            overwrite: false,
            save_steps: None,
            save_total_limit: default_save_total_limit(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// One of val_loss, val_accuracy, val_f1_macro, val_f1_weighted.
    pub metric: String,
    pub patience: usize,
}

/// One epoch's numbers (one line of epochs.jsonl).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub step: usize,
    pub train_loss: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub val_f1_macro: Option<f64>,
    pub val_f1_weighted: Option<f64>,
    pub seconds: f64,
    pub train_samples_per_s: f64,
}

impl EpochLog {
    fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "val_loss" => self.val_loss.map(|v| -v),
            "val_accuracy" => self.val_accuracy,
            "val_f1_macro" => self.val_f1_macro,
            "val_f1_weighted" => self.val_f1_weighted,
            _ => None,
        }
    }
}

/// Where a run is: saved with each checkpoint so `resume` continues exactly.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainState {
    pub global_step: usize,
    pub epoch: usize,
    /// Optimizer steps already taken in `epoch`.
    pub step_in_epoch: usize,
    pub dropout_seed: u64,
    pub dropout_calls: u64,
    pub best_metric: Option<f64>,
    pub epochs_without_improvement: usize,
    pub history: Vec<EpochLog>,
    /// Set by early stopping: a resumed run does not continue past it.
    pub finished: bool,
    /// The settings the run started with; a resume must match them (checkpoints written
    /// before they were recorded have none).
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
}

/// What decides a run's trajectory, as recorded in its checkpoints: a resume with any of these
/// changed would continue one run with another's settings (a different batch size, for one,
/// would skip the rest of the epoch). `max_steps` (a stop point), progress, evaluation batch
/// size and `overwrite` may change.
fn run_settings(cfg: &TrainConfig, train_examples: usize) -> serde_json::Value {
    serde_json::json!({
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum.max(1),
        "lr": cfg.optimizer.lr,
        "beta1": cfg.optimizer.beta1,
        "beta2": cfg.optimizer.beta2,
        "eps": cfg.optimizer.eps,
        "weight_decay": cfg.optimizer.weight_decay,
        "schedule": cfg.schedule,
        "warmup_ratio": cfg.warmup_ratio,
        "max_grad_norm": cfg.max_grad_norm,
        "seed": cfg.seed,
        "bucket_by_length": cfg.bucket_by_length,
        "early_stopping": cfg.early_stopping,
        "train_examples": train_examples,
    })
}

/// The first setting that differs between a checkpoint's run and this one, as an error.
fn check_settings(ckpt: &Path, saved: &serde_json::Value, now: &serde_json::Value) -> Result<()> {
    let (Some(saved), Some(now)) = (saved.as_object(), now.as_object()) else {
        return Ok(());
    };
    for (k, v) in now {
        let was = saved.get(k).unwrap_or(&serde_json::Value::Null);
        if was != v {
            bail!(
                "cannot resume from {}: its run had {k} = {was}, this one asks for {k} = {v}. A run \
                 resumes with the settings it started with: repeat them, or start a new run in \
                 another folder (or here, deleting this one's checkpoints, with --overwrite)",
                ckpt.display()
            )
        }
    }
    Ok(())
}

/// Keeps the lines of a JSONL log whose `key` is at most `max` (what a checkpoint covers):
/// steps logged after the checkpoint the run resumes from would otherwise appear twice.
fn trim_log(path: &Path, key: &str, max: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v[key].as_u64())
                .is_some_and(|n| n as usize <= max)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() != text.len() {
        crate::util::write_atomic(path, kept.as_bytes())?;
    }
    Ok(())
}

/// How `fit` ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub state: TrainState,
    /// "completed", "max_steps", "early_stopping" or "interrupted".
    pub reason: String,
}

/// Per-example predictions for a split.
#[derive(Clone, Debug)]
pub struct Predictions {
    pub logits: Vec<Vec<f32>>,
    pub probabilities: Vec<Vec<f32>>,
    pub predicted: Vec<usize>,
    /// Mean cross-entropy when the split has labels.
    pub loss: Option<f64>,
}

/// Runs the model over a tokenized split in length-sorted batches (eval mode, no graph kept)
/// and returns predictions in the split's order.
pub fn predict(
    model: &AutoModelForSequenceClassification,
    ds: &Dataset,
    batch_size: usize,
    label_column: Option<&str>,
    pad_token_id: u32,
) -> Result<Predictions> {
    let lens = lengths(ds)?;
    let opts = BatchOptions {
        batch_size,
        shuffle: false,
        bucket_by_length: false,
        label_column: label_column.map(String::from),
        pad_token_id,
        ..Default::default()
    };
    let mut order: Vec<usize> = (0..ds.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
    let n = ds.len();
    let (mut logits, mut probs, mut pred) = (vec![vec![]; n], vec![vec![]; n], vec![0; n]);
    let mut loss_sum = 0.0;
    for idx in order.chunks(batch_size.max(1)) {
        let b = make_batch(ds, idx, &lens, &opts, &Device::Cpu)?;
        let out = model.forward(&b.input, false)?.detach();
        if let Some(l) = &b.labels {
            loss_sum += cross_entropy(&out, l)?.to_scalar::<f32>()? as f64 * idx.len() as f64;
        }
        let p = crate::nn::softmax_last_dim(&out)?;
        let am = out.argmax(D::Minus1)?.to_vec1::<u32>()?;
        for (k, (&i, (lrow, prow))) in idx
            .iter()
            .zip(out.to_vec2::<f32>()?.into_iter().zip(p.to_vec2::<f32>()?))
            .enumerate()
        {
            logits[i] = lrow;
            probs[i] = prow;
            pred[i] = am[k] as usize;
        }
    }
    Ok(Predictions {
        logits,
        probabilities: probs,
        predicted: pred,
        loss: label_column.map(|_| loss_sum / n.max(1) as f64),
    })
}

/// Predicts a labelled split and scores it (sklearn's report, digits 2, zero_division 0).
pub fn evaluate(
    model: &AutoModelForSequenceClassification,
    ds: &Dataset,
    batch_size: usize,
    label_column: &str,
    pad_token_id: u32,
) -> Result<(Predictions, Report)> {
    let p = predict(model, ds, batch_size, Some(label_column), pad_token_id)?;
    let y: Vec<usize> = ds
        .column(label_column)?
        .as_int()
        .ok_or_else(|| anyhow!("{label_column:?} is not integer labels"))?
        .iter()
        .map(|&v| v as usize)
        .collect();
    let r = classification_report(&y, &p.predicted, &model.labels, 2, 0.0)?;
    Ok((p, r))
}

fn append_jsonl(path: &Path, v: &impl Serialize) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(v)?)?;
    Ok(())
}

/// The newest complete checkpoint under `dir/checkpoints` (partial `.tmp-*` folders, which a
/// crash mid-save leaves behind, are ignored).
pub fn latest_checkpoint(dir: &Path) -> Option<PathBuf> {
    let mut v: Vec<(usize, PathBuf)> = std::fs::read_dir(dir.join("checkpoints"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let n = p
                .file_name()?
                .to_str()?
                .strip_prefix("checkpoint-")?
                .parse()
                .ok()?;
            p.join("trainer_state.json").is_file().then_some((n, p))
        })
        .collect();
    v.sort();
    v.pop().map(|(_, p)| p)
}

/// Writes model + optimizer + state into `checkpoints/checkpoint-<step>` atomically (built in
/// a temp folder, then renamed), then removes older checkpoints.
fn save_checkpoint(
    dir: &Path,
    model: &AutoModelForSequenceClassification,
    opt: &AdamW,
    state: &TrainState,
    keep: usize,
) -> Result<PathBuf> {
    // Never save a diverged model over a good one: a step whose loss was finite can still
    // leave non-finite weights behind it.
    for (name, v) in model.params() {
        let s = v
            .as_tensor()
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        if !s.is_finite() {
            bail!(
                "the weights are no longer finite after step {} ({name}): training stopped. The \
                 last good checkpoint is {} (lower --lr, or set --max-grad-norm)",
                state.global_step,
                latest_checkpoint(dir).map_or("none".into(), |p| p.display().to_string())
            )
        }
    }
    let root = dir.join("checkpoints");
    std::fs::create_dir_all(&root)?;
    let tmp = tempfile::Builder::new().prefix(".tmp-").tempdir_in(&root)?;
    model.save_pretrained(tmp.path())?;
    opt.save(tmp.path())?;
    crate::util::write_atomic(
        &tmp.path().join("trainer_state.json"),
        serde_json::to_string_pretty(state)?.as_bytes(),
    )?;
    let dest = root.join(format!("checkpoint-{}", state.global_step));
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(tmp.keep(), &dest)?;
    // The rename is durable only once the folder holding it is on disk.
    #[cfg(unix)]
    std::fs::File::open(&root)?.sync_all()?;
    // Keep the newest `keep` (at least this one), by step.
    let mut all: Vec<(usize, PathBuf)> = std::fs::read_dir(&root)?
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_str()?
                .strip_prefix("checkpoint-")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    all.sort();
    let drop_n = all.len().saturating_sub(keep.max(1));
    for (_, p) in all.into_iter().take(drop_n) {
        if p != dest {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
    Ok(dest)
}

/// Restores weights, optimizer and state from a checkpoint folder.
fn load_checkpoint(
    ckpt: &Path,
    model: &AutoModelForSequenceClassification,
    opt: &mut AdamW,
) -> Result<TrainState> {
    let t =
        crate::formats::checkpoint::read_checkpoint(&ckpt.join("model.safetensors"), &Device::Cpu)?;
    for (name, var) in model.params() {
        let v = t
            .get(&name)
            .ok_or_else(|| anyhow!("{}: no tensor {name}", ckpt.display()))?;
        var.set(&v.to_dtype(var.dtype())?)?;
    }
    opt.load(ckpt)?;
    let state: TrainState = serde_json::from_str(
        &std::fs::read_to_string(ckpt.join("trainer_state.json"))
            .with_context(|| format!("reading {}", ckpt.display()))?,
    )?;
    model
        .weights()
        .dropout_rng()
        .set_state(state.dropout_seed, state.dropout_calls);
    Ok(state)
}

/// Fine-tunes `model` (loaded trainable) on a tokenized `train` split with a `label` column,
/// validating on `val` after every epoch. Logs, checkpoints and the final state go to
/// `out_dir`. With `resume`, continues from the newest checkpoint there.
pub fn fit(
    model: &AutoModelForSequenceClassification,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
    out_dir: &Path,
    resume: bool,
    pad_token_id: u32,
) -> Result<Outcome> {
    fit_with(
        model,
        train,
        val,
        cfg,
        out_dir,
        resume,
        pad_token_id,
        &Hooks::default(),
    )
}

/// What happened in `fit`, for a caller that draws its own progress (the Python package
/// feeds these to tqdm in a notebook).
#[derive(Clone, Debug)]
pub enum Event {
    /// An optimizer step ended: `batch` of `batches` batches of this epoch are done.
    Step {
        epoch: usize,
        epochs: usize,
        batch: usize,
        batches: usize,
        loss: f64,
    },
    /// An epoch ended, validation included.
    Epoch(EpochLog),
}

/// A caller's view into and control over `fit`.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Set from another thread to stop after the current optimizer step; `fit` writes a
    /// checkpoint there and returns with reason "interrupted" (Ctrl-C in the Python package).
    pub stop: Option<&'a AtomicBool>,
    pub on_event: Option<&'a (dyn Fn(Event) + Sync)>,
}

impl Hooks<'_> {
    fn emit(&self, e: Event) {
        if let Some(f) = self.on_event {
            f(e)
        }
    }
    fn stopped(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// [`fit`] with progress events and a stop flag.
#[allow(clippy::too_many_arguments)]
pub fn fit_with(
    model: &AutoModelForSequenceClassification,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
    out_dir: &Path,
    resume: bool,
    pad_token_id: u32,
    hooks: &Hooks,
) -> Result<Outcome> {
    let params = model.params();
    if params.is_empty() {
        bail!("the model has no trainable parameters: load it with a training seed")
    }
    if train.is_empty() {
        bail!("the training split is empty")
    }
    std::fs::create_dir_all(out_dir)?;
    let mut opt = AdamW::new(params.clone(), cfg.optimizer.clone())?;
    let accum = cfg.grad_accum.max(1);
    let bopts = BatchOptions {
        batch_size: cfg.batch_size,
        shuffle: true,
        seed: cfg.seed,
        bucket_by_length: cfg.bucket_by_length,
        label_column: Some("label".into()),
        pad_token_id,
    };
    let batches_per_epoch = train.len().div_ceil(cfg.batch_size.max(1));
    let steps_per_epoch = batches_per_epoch.div_ceil(accum);
    let total_steps = steps_per_epoch * cfg.epochs;
    let warmup = (cfg.warmup_ratio * total_steps as f64).round() as usize;
    let save_every = cfg.save_steps.unwrap_or(steps_per_epoch.div_ceil(4)).max(1);

    // Temp folders a killed save left behind.
    if let Ok(entries) = std::fs::read_dir(out_dir.join("checkpoints")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let settings = run_settings(cfg, train.len());
    let mut state = TrainState::default();
    if resume {
        match latest_checkpoint(out_dir) {
            Some(c) => {
                state = load_checkpoint(&c, model, &mut opt)?;
                match &state.settings {
                    Some(saved) => check_settings(&c, saved, &settings)?,
                    None => eprintln!(
                        "warning: {} does not record its run's settings; resuming on trust",
                        c.display()
                    ),
                }
                eprintln!("resuming from {} (step {})", c.display(), state.global_step);
                trim_log(&out_dir.join("steps.jsonl"), "step", state.global_step)?;
                trim_log(&out_dir.join("epochs.jsonl"), "epoch", state.epoch)?;
            }
            None => eprintln!("no checkpoint in {}: starting fresh", out_dir.display()),
        }
    } else {
        if let Some(c) = latest_checkpoint(out_dir) {
            if !cfg.overwrite {
                bail!(
                    "{} holds another run's checkpoint ({}): continue that run with --resume, \
                     choose another --output folder, or pass --overwrite to delete it and start over",
                    out_dir.display(),
                    c.display()
                )
            }
            std::fs::remove_dir_all(out_dir.join("checkpoints"))
                .with_context(|| format!("deleting {}", out_dir.join("checkpoints").display()))?;
        }
        for f in ["steps.jsonl", "epochs.jsonl"] {
            let _ = std::fs::remove_file(out_dir.join(f));
        }
    }
    state.settings = Some(settings);
    let (seed0, _) = model.weights().dropout_rng().state();
    if !resume || state.global_step == 0 {
        state.dropout_seed = seed0;
    }
    let steps_log = out_dir.join("steps.jsonl");
    let epochs_log = out_dir.join("epochs.jsonl");
    let mut reason = "completed".to_string();

    while state.epoch < cfg.epochs && !state.finished {
        let epoch = state.epoch;
        let t0 = Instant::now();
        let all = batches(train, &bopts, epoch, &Device::Cpu)?;
        let mut bar = progress_bar(
            cfg.progress,
            all.len() as u64,
            &format!("epoch {}/{}", epoch + 1, cfg.epochs),
        );
        bar.set_position((state.step_in_epoch * accum) as u64);
        let (mut loss_sum, mut loss_n, mut samples) = (0.0, 0usize, 0usize);
        let mut acc: Option<Grads> = None;
        for (bi, batch) in all.iter().enumerate().skip(state.step_in_epoch * accum) {
            let labels = batch.labels.as_ref().context("batch without labels")?;
            let (loss, g) =
                model.loss_and_grads(&batch.input, labels, 1.0 / accum as f64, &params)?;
            let lv = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !lv.is_finite() {
                bar.abandon();
                bail!(
                    "the loss is not finite ({lv}) at epoch {} step {}: training stopped. The last good checkpoint is {} (lower --lr, or set --max-grad-norm)",
                    epoch + 1,
                    state.global_step,
                    latest_checkpoint(out_dir).map_or("none".into(), |p| p.display().to_string())
                );
            }
            match &mut acc {
                None => acc = Some(g),
                Some(a) => accumulate(a, g)?,
            }
            loss_sum += lv * batch.indices.len() as f64;
            loss_n += batch.indices.len();
            samples += batch.indices.len();
            bar.inc(1);
            let last = bi + 1 == all.len();
            if (bi + 1) % accum != 0 && !last {
                continue;
            }
            let mut grads = acc.take().unwrap();
            let grad_norm = match cfg.max_grad_norm {
                Some(m) => Some(clip_grad_norm(&mut grads, m)?),
                None => None,
            };
            let lr = cfg
                .schedule
                .lr(cfg.optimizer.lr, state.global_step, warmup, total_steps);
            opt.step(&grads, lr)?;
            state.global_step += 1;
            state.step_in_epoch += 1;
            let rate = samples as f64 / t0.elapsed().as_secs_f64();
            bar.set_message(format!("loss {lv:.4}  {rate:.1} samples/s"));
            append_jsonl(
                &steps_log,
                &serde_json::json!({"step": state.global_step, "epoch": epoch + 1, "loss": lv,
                    "lr": lr, "grad_norm": grad_norm, "tokens": batch.tokens, "samples_per_s": rate}),
            )?;
            hooks.emit(Event::Step {
                epoch: epoch + 1,
                epochs: cfg.epochs,
                batch: bi + 1,
                batches: all.len(),
                loss: lv,
            });
            // A stop (Ctrl-C from a caller, or max_steps) ends the run with a checkpoint there.
            let stop = if hooks.stopped() {
                Some("interrupted")
            } else if cfg.max_steps.is_some_and(|m| state.global_step >= m) {
                Some("max_steps")
            } else {
                None
            };
            if let Some(reason) = stop {
                bar.abandon();
                sync_rng(model, &mut state);
                let c = save_checkpoint(out_dir, model, &opt, &state, cfg.save_total_limit)?;
                eprintln!(
                    "stopped at step {} ({reason}); checkpoint {}",
                    state.global_step,
                    c.display()
                );
                return Ok(Outcome {
                    state,
                    reason: reason.into(),
                });
            }
            if state.global_step % save_every == 0 {
                sync_rng(model, &mut state);
                save_checkpoint(out_dir, model, &opt, &state, cfg.save_total_limit)?;
            }
        }
        bar.finish_and_clear();
        let secs = t0.elapsed().as_secs_f64();
        let mut log = EpochLog {
            epoch: epoch + 1,
            step: state.global_step,
            train_loss: loss_sum / loss_n.max(1) as f64,
            val_loss: None,
            val_accuracy: None,
            val_f1_macro: None,
            val_f1_weighted: None,
            seconds: secs,
            train_samples_per_s: samples as f64 / secs,
        };
        if let Some(v) = val {
            let (p, r) = evaluate(model, v, cfg.eval_batch_size, "label", pad_token_id)?;
            log.val_loss = p.loss;
            log.val_accuracy = Some(r.accuracy);
            log.val_f1_macro = Some(r.f1_macro());
            log.val_f1_weighted = Some(r.f1_weighted());
        }
        eprintln!(
            "epoch {}/{}: train loss {:.4}{} ({:.0} s, {:.1} samples/s)",
            epoch + 1,
            cfg.epochs,
            log.train_loss,
            match (log.val_loss, log.val_accuracy, log.val_f1_macro) {
                (Some(l), Some(a), Some(f)) =>
                    format!(", val loss {l:.4}, val accuracy {a:.4}, val macro F1 {f:.4}"),
                _ => String::new(),
            },
            secs,
            log.train_samples_per_s
        );
        append_jsonl(&epochs_log, &log)?;
        hooks.emit(Event::Epoch(log.clone()));
        state.history.push(log.clone());
        state.epoch += 1;
        state.step_in_epoch = 0;
        if let Some(es) = &cfg.early_stopping {
            let m = log
                .metric(&es.metric)
                .ok_or_else(|| anyhow!("early stopping on {:?} needs a validation split (metrics: val_loss, val_accuracy, val_f1_macro, val_f1_weighted)", es.metric))?;
            if state.best_metric.is_none_or(|b| m > b) {
                state.best_metric = Some(m);
                state.epochs_without_improvement = 0;
            } else {
                state.epochs_without_improvement += 1;
                if state.epochs_without_improvement >= es.patience {
                    state.finished = true;
                    reason = "early_stopping".into();
                    eprintln!(
                        "early stopping: {} has not improved for {} epochs",
                        es.metric, es.patience
                    );
                }
            }
        }
        sync_rng(model, &mut state);
        save_checkpoint(out_dir, model, &opt, &state, cfg.save_total_limit)?;
    }
    Ok(Outcome { state, reason })
}

fn sync_rng(model: &AutoModelForSequenceClassification, state: &mut TrainState) {
    let (s, c) = model.weights().dropout_rng().state();
    state.dropout_seed = s;
    state.dropout_calls = c;
}

/// An epoch's progress: an indicatif bar on a terminal; elsewhere (a script, a CI log, a file)
/// a plain line every `LMKIT_PROGRESS_SECS` seconds (default 10) with the step, rate, ETA and
/// loss, so long runs are not silent until they end.
enum Progress {
    Hidden,
    Bar(ProgressBar),
    Plain {
        prefix: String,
        len: u64,
        pos: u64,
        start_pos: u64,
        msg: String,
        start: Instant,
        last: Instant,
        every: std::time::Duration,
    },
}

fn progress_bar(show: bool, len: u64, prefix: &str) -> Progress {
    use std::io::IsTerminal;
    if !show {
        return Progress::Hidden;
    }
    if !std::io::stderr().is_terminal() {
        let secs = std::env::var("LMKIT_PROGRESS_SECS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(10.0);
        let now = Instant::now();
        return Progress::Plain {
            prefix: prefix.to_string(),
            len,
            pos: 0,
            start_pos: 0,
            msg: String::new(),
            start: now,
            last: now,
            every: std::time::Duration::from_secs_f64(secs),
        };
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30.cyan/blue}] {pos}/{len} batches  {elapsed_precise} < {eta_precise}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    Progress::Bar(bar)
}

impl Progress {
    fn set_position(&mut self, p: u64) {
        match self {
            Self::Bar(b) => b.set_position(p),
            Self::Plain { pos, start_pos, .. } => (*pos, *start_pos) = (p, p),
            Self::Hidden => {}
        }
    }

    fn inc(&mut self, n: u64) {
        match self {
            Self::Bar(b) => b.inc(n),
            Self::Plain { pos, .. } => *pos += n,
            Self::Hidden => {}
        }
    }

    /// The message, and for plain output a line when one is due.
    fn set_message(&mut self, m: String) {
        match self {
            Self::Bar(b) => b.set_message(m),
            Self::Plain {
                prefix,
                len,
                pos,
                start_pos,
                msg,
                start,
                last,
                every,
            } => {
                *msg = m;
                if last.elapsed() >= *every {
                    *last = Instant::now();
                    let done = (*pos - *start_pos) as f64;
                    let secs = start.elapsed().as_secs_f64();
                    let eta = if done > 0.0 {
                        (*len - *pos) as f64 * secs / done
                    } else {
                        f64::NAN
                    };
                    eprintln!(
                        "{prefix}: batch {pos}/{len} ({:.0}%), {:.0} s, ETA {}, {msg}",
                        100.0 * *pos as f64 / (*len).max(1) as f64,
                        secs,
                        if eta.is_finite() {
                            format!("{eta:.0} s")
                        } else {
                            "-".into()
                        }
                    );
                }
            }
            Self::Hidden => {}
        }
    }

    fn finish_and_clear(&self) {
        if let Self::Bar(b) = self {
            b.finish_and_clear()
        }
    }

    fn abandon(&self) {
        if let Self::Bar(b) = self {
            b.abandon()
        }
    }
}

/// Training curves from epochs.jsonl: train and validation loss, validation accuracy / F1.
pub fn curves_chart(history: &[EpochLog]) -> crate::plot::LineChart {
    let pts = |f: &dyn Fn(&EpochLog) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|e| Some((e.epoch as f64, f(e)?)))
            .collect()
    };
    let mut series = vec![("train loss".to_string(), pts(&|e| Some(e.train_loss)))];
    for (name, f) in [
        (
            "val loss",
            &(|e: &EpochLog| e.val_loss) as &dyn Fn(&EpochLog) -> Option<f64>,
        ),
        ("val accuracy", &|e: &EpochLog| e.val_accuracy),
        ("val macro F1", &|e: &EpochLog| e.val_f1_macro),
    ] {
        let p = pts(f);
        if !p.is_empty() {
            series.push((name.to_string(), p));
        }
    }
    crate::plot::LineChart {
        title: "Training curves".into(),
        x_label: "epoch".into(),
        y_label: "loss / score".into(),
        series,
    }
}
