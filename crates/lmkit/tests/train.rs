//! Metrics against scikit-learn, and the trainer: exact resume, NaN handling, crash-safe
//! checkpoints, early stopping, save/load round trips.

mod common;
use common::*;

use candle_core::Device;
use lmkit::data::{ClassLabel, Column, Dataset, Feature, Field};
use lmkit::metrics::{classification_report, confusion_matrix};
use lmkit::models::AutoModelForSequenceClassification;
use lmkit::models::LoadOptions;
use lmkit::nn::optim::AdamWConfig;
use lmkit::train::{fit, latest_checkpoint, predict, EarlyStopping, TrainConfig};

#[test]
fn metrics_equal_scikit_learn() {
    let fx = fixture("metrics.json");
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let yt: Vec<usize> = u32s(&case["y_true"])
            .into_iter()
            .map(|v| v as usize)
            .collect();
        let yp: Vec<usize> = u32s(&case["y_pred"])
            .into_iter()
            .map(|v| v as usize)
            .collect();
        let names: Vec<String> = case["target_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        let cm = confusion_matrix(&yt, &yp, names.len()).unwrap();
        let want: Vec<Vec<usize>> = u32_rows(&case["confusion_matrix"])
            .into_iter()
            .map(|r| r.into_iter().map(|v| v as usize).collect())
            .collect();
        assert_eq!(cm, want, "{name}");
        let digits = case["digits"].as_u64().unwrap() as usize;
        let zd = case["zero_division"].as_f64().unwrap();
        let r = classification_report(&yt, &yp, &names, digits, zd).unwrap();
        assert_eq!(
            r.to_string(),
            case["report_text"].as_str().unwrap(),
            "{name} report text"
        );
        assert!(
            (r.accuracy - case["accuracy"].as_f64().unwrap()).abs() < 1e-12,
            "{name}"
        );
        assert!(
            (r.f1_macro() - case["f1_macro"].as_f64().unwrap()).abs() < 1e-12,
            "{name}"
        );
        assert!(
            (r.f1_weighted() - case["f1_weighted"].as_f64().unwrap()).abs() < 1e-12,
            "{name}"
        );
        let d = &case["report_dict"];
        for (cname, s) in &r.classes {
            assert!(
                (s.precision - d[cname]["precision"].as_f64().unwrap()).abs() < 1e-12,
                "{name}/{cname}"
            );
            assert!(
                (s.recall - d[cname]["recall"].as_f64().unwrap()).abs() < 1e-12,
                "{name}/{cname}"
            );
        }
    }
}

/// A small labelled set of token ids for the tiny BERT (vocab 99): label = id of the 2nd token
/// mod 3, so there is something to learn.
fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |m: u64| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) % m
    };
    let (mut ids, mut mask, mut types, mut labels) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let len = 3 + next(8) as usize;
        let row: Vec<u32> = (0..len)
            .map(|j| if j == 0 { 2 } else { 3 + next(95) as u32 })
            .collect();
        labels.push((row[1] % 3) as i64);
        mask.push(vec![1u32; len]);
        types.push(vec![0u32; len]);
        ids.push(row);
    }
    let f = |n: &str, c: Column| Field {
        name: n.into(),
        feature: Feature::Sequence("int32".into()),
        column: c,
    };
    Dataset::new(
        vec![
            f("input_ids", Column::IntList(ids)),
            f("token_type_ids", Column::IntList(types)),
            f("attention_mask", Column::IntList(mask)),
            Field {
                name: "label".into(),
                feature: Feature::ClassLabel(ClassLabel::new(["neg", "neu", "pos"])),
                column: Column::Int(labels),
            },
        ],
        "synthetic",
    )
    .unwrap()
}

fn tiny(seed: u64) -> AutoModelForSequenceClassification {
    let labels = vec!["neg".into(), "neu".into(), "pos".into()];
    // A fresh head on the tiny body: the same situation as fine-tuning a pretrained encoder.
    let dir = fixtures().join("tiny-bert-cls");
    let m =
        AutoModelForSequenceClassification::load(&dir, Some(labels), &LoadOptions::training(seed))
            .unwrap();
    assert!(
        m.newly_initialised().is_empty(),
        "tiny-bert-cls has its own head"
    );
    m
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        optimizer: AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
        seed: 5,
        progress: false,
        eval_batch_size: 32,
        ..Default::default()
    }
}

fn weights(m: &AutoModelForSequenceClassification) -> Vec<(String, Vec<f32>)> {
    m.params()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            )
        })
        .collect()
}

#[test]
fn an_interrupted_and_resumed_run_ends_with_the_same_weights() {
    let (train, val) = (synthetic(96, 1), synthetic(32, 2));
    let a_dir = tempfile::tempdir().unwrap();
    let a = tiny(9);
    let out = fit(&a, &train, Some(&val), &cfg(2), a_dir.path(), false, 0).unwrap();
    assert_eq!(out.reason, "completed");
    assert_eq!(out.state.global_step, 12);

    let b_dir = tempfile::tempdir().unwrap();
    let b = tiny(9);
    let stop = TrainConfig {
        max_steps: Some(8),
        ..cfg(2)
    };
    let out = fit(&b, &train, Some(&val), &stop, b_dir.path(), false, 0).unwrap();
    assert_eq!(
        (out.reason.as_str(), out.state.global_step),
        ("max_steps", 8)
    );
    drop(b);
    // A new process would start from scratch: a fresh model, then --resume.
    let b = tiny(9);
    let out = fit(&b, &train, Some(&val), &cfg(2), b_dir.path(), true, 0).unwrap();
    assert_eq!(out.state.global_step, 12);
    assert_eq!(out.state.history.len(), 2);
    let (wa, wb) = (weights(&a), weights(&b));
    let mut worst = 0f32;
    for ((n, x), (_, y)) in wa.iter().zip(&wb) {
        let d = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(d <= 1e-6, "{n} differs by {d}");
        worst = worst.max(d);
    }
    // Training did move the weights (the comparison is not between two untouched models).
    let w0 = weights(&tiny(9));
    let moved = w0
        .iter()
        .zip(&wa)
        .map(|((_, x), (_, y))| {
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max)
        })
        .fold(0.0, f32::max);
    assert!(moved > 1e-3, "weights moved by only {moved}");
}

#[test]
fn a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint() {
    let (train, val) = (synthetic(48, 3), synthetic(16, 4));
    let dir = tempfile::tempdir().unwrap();
    let stop = TrainConfig {
        max_steps: Some(1),
        ..cfg(2)
    };
    fit(&tiny(1), &train, Some(&val), &stop, dir.path(), false, 0).unwrap();
    let good = latest_checkpoint(dir.path()).unwrap();
    assert!(good.ends_with("checkpoint-1"));
    // Poison the optimizer's first moments: the next update makes every weight NaN. Training
    // stops there, at the save after that step (which refuses non-finite weights) or at the
    // next step's NaN loss, whichever comes first; either way checkpoint-1 stays the last.
    let opt_file = good.join("optimizer.safetensors");
    let poisoned: std::collections::HashMap<String, candle_core::Tensor> =
        candle_core::safetensors::load(&opt_file, &candle_core::Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(n, t)| {
                let t = if n.starts_with("m.") {
                    (t.ones_like().unwrap() * f64::NAN).unwrap()
                } else {
                    t
                };
                (n, t)
            })
            .collect();
    candle_core::safetensors::save(&poisoned, &opt_file).unwrap();
    let err = fit(&tiny(1), &train, Some(&val), &cfg(2), dir.path(), true, 0)
        .unwrap_err()
        .to_string();
    assert!(
        (err.contains("not finite") || err.contains("no longer finite"))
            && err.contains("last good checkpoint is")
            && err.contains("checkpoint-1"),
        "{err}"
    );
    let still = latest_checkpoint(dir.path()).unwrap();
    assert!(still.ends_with("checkpoint-1"), "{}", still.display());
    let reloaded =
        AutoModelForSequenceClassification::load(&still, None, &LoadOptions::default()).unwrap();
    let p = predict(&reloaded, &val, 8, Some("label"), 0).unwrap();
    assert!(p.loss.unwrap().is_finite());
}

/// A resume continues one run: a changed setting is refused, naming it; a fresh run refuses a
/// folder with another run's checkpoints unless told to overwrite; logs are trimmed back to
/// the checkpoint; a temp folder a killed save left is removed.
#[test]
fn runs_never_mix() {
    let (train, val) = (synthetic(48, 9), synthetic(16, 10));
    let dir = tempfile::tempdir().unwrap();
    let stop = TrainConfig {
        max_steps: Some(2),
        ..cfg(2)
    };
    fit(&tiny(4), &train, Some(&val), &stop, dir.path(), false, 0).unwrap();
    for (changed, field) in [
        (
            TrainConfig {
                batch_size: 8,
                ..cfg(2)
            },
            "batch_size",
        ),
        (
            TrainConfig {
                optimizer: AdamWConfig {
                    lr: 0.5,
                    ..cfg(2).optimizer
                },
                ..cfg(2)
            },
            "lr",
        ),
        (cfg(3), "epochs"),
    ] {
        let err = fit(&tiny(4), &train, Some(&val), &changed, dir.path(), true, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{field} =")), "{field}: {err}");
    }
    let err = fit(
        &tiny(4),
        &synthetic(40, 9),
        Some(&val),
        &cfg(2),
        dir.path(),
        true,
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("train_examples"), "{err}");
    let err = fit(&tiny(4), &train, Some(&val), &cfg(2), dir.path(), false, 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--overwrite") && err.contains("checkpoint-2"),
        "{err}"
    );

    // Steps 3 and 4 logged by a run killed after them, before its next checkpoint.
    let steps = dir.path().join("steps.jsonl");
    let mut log = std::fs::read_to_string(&steps).unwrap();
    log.push_str("{\"step\":3,\"loss\":9}\n{\"step\":4,\"loss\":9}\n");
    std::fs::write(&steps, log).unwrap();
    let tmp = dir.path().join("checkpoints").join(".tmp-killed");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = fit(&tiny(4), &train, Some(&val), &cfg(2), dir.path(), true, 0).unwrap();
    assert_eq!(out.state.global_step, 6);
    assert!(!tmp.exists(), "the killed save's temp folder is removed");
    let logged: Vec<u64> = std::fs::read_to_string(&steps)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(logged, vec![1, 2, 3, 4, 5, 6], "each step once");

    let over = TrainConfig {
        overwrite: true,
        ..cfg(1)
    };
    let out = fit(&tiny(4), &train, Some(&val), &over, dir.path(), false, 0).unwrap();
    assert_eq!(out.state.global_step, 3);
    assert!(latest_checkpoint(dir.path())
        .unwrap()
        .ends_with("checkpoint-3"));
}

#[test]
fn partial_checkpoints_left_by_a_crash_are_ignored() {
    let (train, val) = (synthetic(32, 5), synthetic(16, 6));
    let dir = tempfile::tempdir().unwrap();
    let stop = TrainConfig {
        max_steps: Some(2),
        ..cfg(2)
    };
    fit(&tiny(2), &train, Some(&val), &stop, dir.path(), false, 0).unwrap();
    let ck = dir.path().join("checkpoints");
    // What a kill during a save leaves: a temp folder with a half-written file, never a
    // checkpoint-N folder (that name appears only by an atomic rename of a complete folder).
    std::fs::create_dir_all(ck.join(".tmp-crashed")).unwrap();
    std::fs::write(ck.join(".tmp-crashed").join("model.safetensors"), b"half").unwrap();
    std::fs::create_dir_all(ck.join("checkpoint-999")).unwrap();
    let latest = latest_checkpoint(dir.path()).unwrap();
    assert!(latest.ends_with("checkpoint-2"), "{}", latest.display());
    let out = fit(&tiny(2), &train, Some(&val), &cfg(2), dir.path(), true, 0).unwrap();
    assert_eq!(out.state.global_step, 4);
}

#[test]
fn early_stopping_ends_a_run_that_stopped_improving() {
    let (train, val) = (synthetic(32, 7), synthetic(16, 8));
    let dir = tempfile::tempdir().unwrap();
    let c = TrainConfig {
        optimizer: AdamWConfig {
            lr: 0.0,
            ..Default::default()
        },
        early_stopping: Some(EarlyStopping {
            metric: "val_accuracy".into(),
            patience: 1,
        }),
        ..cfg(5)
    };
    let out = fit(&tiny(3), &train, Some(&val), &c, dir.path(), false, 0).unwrap();
    assert_eq!(out.reason, "early_stopping");
    assert_eq!(out.state.history.len(), 2);
    let bad = TrainConfig {
        early_stopping: Some(EarlyStopping {
            metric: "val_accuracy".into(),
            patience: 1,
        }),
        ..cfg(1)
    };
    let fresh = tempfile::tempdir().unwrap();
    let err = fit(&tiny(3), &train, None, &bad, fresh.path(), false, 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("validation"),
        "early stopping without validation data: {err}"
    );
}

#[test]
fn a_saved_classifier_reloads_with_the_same_logits_and_transformers_names() {
    let (train, val) = (synthetic(32, 9), synthetic(16, 10));
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(4);
    fit(&m, &train, Some(&val), &cfg(1), dir.path(), false, 0).unwrap();
    let out = dir.path().join("saved");
    m.save_pretrained(&out).unwrap();
    let back =
        AutoModelForSequenceClassification::load(&out, None, &LoadOptions::default()).unwrap();
    assert_eq!(back.labels, vec!["neg", "neu", "pos"]);
    let (a, b) = (
        predict(&m, &val, 8, None, 0).unwrap(),
        predict(&back, &val, 8, None, 0).unwrap(),
    );
    assert_eq!(a.logits, b.logits);
    // Exactly the tensor names transformers wrote for the same architecture.
    let ours =
        lmkit::formats::checkpoint::read_checkpoint(&out.join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let theirs = lmkit::formats::checkpoint::read_checkpoint(
        &fixtures().join("tiny-bert-cls/model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let mut n1: Vec<_> = ours.keys().collect();
    let mut n2: Vec<_> = theirs.keys().collect();
    n1.sort();
    n2.sort();
    assert_eq!(n1, n2);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    assert_eq!(cfg["id2label"]["2"], "pos");
    assert_eq!(cfg["label2id"]["neu"], 1);
}
