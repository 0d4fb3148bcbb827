//! The course workflow at CI size: paraphrase-MiniLM-L3-v2 fine-tuned on a seeded 2,000-example
//! subset of emotion for one epoch must land far above the most-frequent-class baseline
//! (0.352 on the test split) and write a complete run folder.

use lmkit::finetune::{encode_split, run, FinetuneConfig};
use lmkit::models::AutoModelForSequenceClassification;
use lmkit::models::LoadOptions;
use lmkit::nn::optim::AdamWConfig;
use lmkit::tokenize::AutoTokenizer;
use lmkit::train::TrainConfig;

#[test]
fn a_short_fine_tune_on_emotion_learns_and_writes_the_run_folder() {
    let out = tempfile::tempdir().unwrap();
    // Seed override only to measure the spread across seeds (see the threshold below).
    let seed = std::env::var("LMKIT_CI_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    let cfg = FinetuneConfig {
        model: "sentence-transformers/paraphrase-MiniLM-L3-v2".into(),
        max_length: 64,
        train_limit: Some(2000),
        output: out.path().to_path_buf(),
        train: TrainConfig {
            epochs: 1,
            batch_size: 32,
            optimizer: AdamWConfig {
                lr: 2e-4,
                ..Default::default()
            },
            seed,
            progress: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = run(&cfg).unwrap();
    eprintln!(
        "seed {seed}: test accuracy {:.4}, macro F1 {:.4}\n{}",
        s.report.accuracy,
        s.report.f1_macro(),
        s.report
    );
    // Measured with seeds 42, 1, 2 (bench/README.md has the runs); the
    // threshold sits well below the lowest of them and far above the 0.352 baseline.
    assert!(
        s.report.accuracy > 0.55,
        "test accuracy {}",
        s.report.accuracy
    );
    for f in [
        "model/config.json",
        "model/model.safetensors",
        "model/tokenizer.json",
        "metrics.json",
        "report.html",
        "epochs.jsonl",
        "steps.jsonl",
        "predictions.jsonl",
        "plots/confusion_matrix.png",
        "plots/training_curves.svg",
        "plots/class_counts.png",
        "plots/words_per_text_kde.svg",
    ] {
        assert!(out.path().join(f).is_file(), "missing {f}");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(m["accuracy"].as_f64().unwrap(), s.report.accuracy);

    // int8 inference keeps the accuracy. It can flip only sentences whose top two logits lie
    // within the quantization error of each other: 1 of the 2,000 test sentences for the full
    // 5-epoch model (README); 20 (0.01) here is the claim, for a less sure one-epoch model.
    let dir = out.path().join("model");
    let q = AutoModelForSequenceClassification::load(&dir, None, &LoadOptions::int8(true)).unwrap();
    let tok = AutoTokenizer::from_folder(&dir).unwrap();
    let d = lmkit::data::load_dataset("emotion").unwrap();
    let test = encode_split(d.split("test").unwrap(), &tok, "text", 64).unwrap();
    let (_, r8) = lmkit::train::evaluate(&q, &test, 128, "label", tok.pad_token_id).unwrap();
    eprintln!(
        "int8: test accuracy {:.4} (fp32 {:.4}), macro F1 {:.4}",
        r8.accuracy,
        s.report.accuracy,
        r8.f1_macro()
    );
    assert!(
        (r8.accuracy - s.report.accuracy).abs() <= 0.01,
        "int8 accuracy {} vs fp32 {}",
        r8.accuracy,
        s.report.accuracy
    );

    // A model loaded for training refuses: its int8 copy would not follow the updates.
    let both = LoadOptions {
        int8: true,
        ..LoadOptions::training(1)
    };
    let err = AutoModelForSequenceClassification::load(&dir, None, &both)
        .err()
        .expect("int8 + training must be refused")
        .to_string();
    assert!(err.contains("int8 is for inference"), "{err}");
}
