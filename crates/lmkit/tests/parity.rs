//! Numeric parity with the reference implementation (PyTorch `transformers`,
//! `sentence-transformers`, onnxruntime), through fixtures made by
//! tests/fixtures/make_fixtures.py.
//!
//! Tolerances. f32 has unit roundoff u = 6e-8. A dot product of length K summed in another
//! order (gemm vs MKL) differs by about sqrt(K)·u relative (K <= 1536 here: ~2.4e-6), and each
//! layer adds about that much to the residual stream, which layer norm keeps at unit scale.
//! Tiny models (2 layers, K <= 37): 1e-5 of (1 + |x|). MiniLM (3-6 layers): 6 x 2.4e-6 ~ 1.5e-5,
//! so 2e-5 of (1 + |x|) for hidden states. Sentence embeddings average the token vectors (which
//! shrinks independent errors) then normalise: 1e-5. Measured: 1e-7 to 1e-6.

mod common;
use common::*;

use candle_core::{Device, Tensor};
use lmkit::models::{AutoModel, AutoModelForSequenceClassification, ModelInput};
use lmkit::prelude::*;

fn input(case: &serde_json::Value, with_types: bool) -> ModelInput {
    let t = |k: &str| {
        let rows = u32_rows(&case[k]);
        let (b, s) = (rows.len(), rows[0].len());
        Tensor::from_vec(rows.concat(), (b, s), &Device::Cpu).unwrap()
    };
    ModelInput {
        input_ids: t("input_ids"),
        attention_mask: t("attention_mask"),
        token_type_ids: with_types.then(|| t("token_type_ids")),
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn tiny_bert_and_distilbert_match_transformers() {
    let fx = fixture("tiny_logits.json");
    for (key, dir, types) in [
        ("bert", "tiny-bert-cls", true),
        ("distilbert", "tiny-distilbert-cls", false),
    ] {
        let case = &fx[key];
        let dir = fixtures().join(dir);
        let x = input(case, types);
        let clf =
            AutoModelForSequenceClassification::load(&dir, None, &LoadOptions::default()).unwrap();
        assert_eq!(clf.labels, vec!["neg", "neu", "pos"]);
        assert!(
            clf.newly_initialised().is_empty(),
            "{:?}",
            clf.newly_initialised()
        );
        let logits = flat(&clf.forward(&x, false).unwrap());
        let err = max_rel_err(&logits, &floats(&case["logits"]));
        eprintln!("{key} logits: rel err {err:.2e}");
        assert!(err < 1e-5, "{key} logits rel err {err}");

        let base = AutoModel::from_folder(&dir, &LoadOptions::default()).unwrap();
        let h = flat(&base.forward(&x).unwrap());
        let err = max_rel_err(&h, &floats(&case["last_hidden_state"]));
        eprintln!("{key} hidden: rel err {err:.2e}");
        assert!(err < 1e-5, "{key} hidden rel err {err}");
    }
}

#[test]
fn minilm_tokenizer_ids_match_transformers_exactly() {
    let fx = fixture("tokenizer_minilm.json");
    let dir = lmkit::hub::resolve("sentence-transformers/all-MiniLM-L6-v2").unwrap();
    let tok = AutoTokenizer::from_folder(&dir).unwrap();
    assert_eq!(
        tok.model_max_length,
        fx["max_length"].as_u64().unwrap() as usize
    );
    let opts = EncodeOptions {
        padding: Padding::None,
        ..Default::default()
    };
    for case in fx["cases"].as_array().unwrap() {
        let text = case["text"]
            .as_str()
            .unwrap()
            .repeat(case["repeat"].as_u64().unwrap_or(1) as usize);
        let enc = tok.encode_batch(&[text.as_str()], opts).unwrap();
        let name = case["name"].as_str().unwrap();
        assert_eq!(enc.input_ids[0], u32s(&case["input_ids"]), "case {name}");
        assert_eq!(
            enc.attention_mask[0],
            u32s(&case["attention_mask"]),
            "case {name}"
        );
        assert_eq!(
            enc.token_type_ids[0],
            u32s(&case["token_type_ids"]),
            "case {name}"
        );
        let untrunc = case["untruncated_len"].as_u64().unwrap() as usize;
        assert_eq!(
            enc.input_ids[0].len() + enc.truncated[0],
            untrunc,
            "case {name}"
        );
        if name != "long_10000_words" {
            let decoded = tok.decode(&enc.input_ids[0], true).unwrap();
            assert_eq!(decoded, case["decoded"].as_str().unwrap(), "case {name}");
        }
    }
    for case in fx["pair_cases"].as_array().unwrap() {
        let pair = (
            case["text"].as_str().unwrap(),
            case["text_pair"].as_str().unwrap(),
        );
        let enc = tok.encode_pairs(&[pair], opts).unwrap();
        assert_eq!(enc.input_ids[0], u32s(&case["input_ids"]));
        assert_eq!(enc.token_type_ids[0], u32s(&case["token_type_ids"]));
    }
}

fn check_sentence_model(id: &str, fixture_name: &str, hidden_tol: f32, emb_tol: f32) {
    let fx = fixture(fixture_name);
    let st = SentenceTransformer::from_pretrained(id, &LoadOptions::default()).unwrap();
    assert_eq!(
        st.max_seq_length,
        fx["max_seq_length"].as_u64().unwrap() as usize
    );
    assert_eq!(st.normalize, fx["normalize"].as_bool().unwrap());
    let sentences: Vec<&str> = fx["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let got = st.encode(&sentences).unwrap();
    let want = fx["embeddings"].as_array().unwrap();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = max_rel_err(g, &floats(w));
        eprintln!("{id} embedding {i}: rel err {err:.2e}");
        assert!(err < emb_tol, "{id} embedding {i}: rel err {err}");
    }
    // The same padded batch as the reference, compared on a slice of the hidden states.
    let hs = &fx["hidden_slice"];
    let x = input(hs, true);
    let h = st.model.forward(&x).unwrap();
    let slice = h.narrow(1, 0, 5).unwrap().narrow(2, 0, 8).unwrap();
    let err = max_rel_err(&flat(&slice), &floats(&hs["values"]));
    eprintln!("{id} hidden slice: rel err {err:.2e}");
    assert!(err < hidden_tol, "{id} hidden slice rel err {err}");
}

#[test]
fn all_minilm_l6_matches_sentence_transformers() {
    check_sentence_model(
        "sentence-transformers/all-MiniLM-L6-v2",
        "embeddings_minilm_l6.json",
        2e-5,
        1e-5,
    );
}

#[test]
fn paraphrase_minilm_l3_from_onnx_matches_onnxruntime() {
    check_sentence_model(
        "sentence-transformers/paraphrase-MiniLM-L3-v2",
        "embeddings_minilm_l3.json",
        2e-5,
        1e-5,
    );
}

/// A classifier trained and saved by lmkit (`cargo run --example make_interop_fixture`) loads in
/// Python transformers' AutoModelForSequenceClassification (tests/fixtures/check_lmkit_saved.py
/// recorded its logits) and gives the same logits as lmkit.
#[test]
fn models_saved_by_lmkit_load_in_transformers_with_the_same_logits() {
    let py = fixture("lmkit_saved_python_logits.json");
    let batch = fixture("tiny_logits.json");
    for (key, types) in [("bert", true), ("distilbert", false)] {
        let dir = fixtures().join(py[key]["dir"].as_str().unwrap());
        let clf =
            AutoModelForSequenceClassification::load(&dir, None, &LoadOptions::default()).unwrap();
        assert_eq!(py[key]["id2label"]["2"], "pos");
        let logits = flat(&clf.forward(&input(&batch[key], types), false).unwrap());
        let err = max_rel_err(&logits, &floats(&py[key]["logits"]));
        assert!(
            err < 1e-5,
            "{key}: lmkit vs transformers on lmkit's checkpoint, rel err {err}"
        );
    }
}
