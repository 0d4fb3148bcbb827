//! Encoder-decoders (Marian, BART, T5 and T5 v1.1-style gated) and their greedy and beam search,
//! against transformers on tiny random checkpoints (tests/fixtures/make_seq2seq_fixtures.py).
//!
//! Tolerances: weights and activations are O(1) and both sides compute in f32 through a few
//! dozen reductions of 16-64 terms, so a different summation order moves values by ~1e-6;
//! 1e-4 absolute on encoder outputs and logits leaves a wide margin while a wrong formula (a
//! missing scale, a shifted position, a wrong bucket) moves them by 1e-2 or more. Token ids
//! must be equal: the fixture's smallest greedy top-2 gap is 3.9e-5 in logits, above the error.
//! Beam scores are sums of ~15 log-probabilities: 1e-4 relative.

mod common;

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use lmkit::generation::beam::{generate, SearchConfig};
use lmkit::models::seq2seq::load_folder;

fn dir(name: &str) -> PathBuf {
    common::fixtures().join("seq2seq").join(name)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn flat(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(common::floats)
        .collect()
}

#[test]
fn seq2seq_models_match_transformers_numerically() {
    let f = common::fixture("seq2seq.json");
    for (name, m) in f["models"].as_object().unwrap() {
        let model = load_folder(&dir(name), &Device::Cpu).unwrap();
        let c = &m["check"];
        let ids = Tensor::new(common::u32s(&c["input_ids"]), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let enc = model.encode(&ids).unwrap();
        let got: Vec<f32> = enc.flatten_all().unwrap().to_vec1().unwrap();
        let err = max_abs(&got, &flat(&c["encoder_out"]));
        assert!(err < 1e-4, "{name}: encoder output differs by {err}");
        let mut cache = model.start_decoding(&enc, 1).unwrap();
        let dec = Tensor::new(common::u32s(&c["decoder_input_ids"]), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = model.decode(&dec, &mut cache).unwrap();
        let got: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
        let err = max_abs(&got, &flat(&c["logits"]));
        assert!(err < 1e-4, "{name}: teacher-forced logits differ by {err}");

        // The same logits one token at a time through the cache.
        let mut cache = model.start_decoding(&enc, 1).unwrap();
        let want = flat(&c["logits"]);
        let v = model.specials().vocab_size;
        for (t, &id) in common::u32s(&c["decoder_input_ids"]).iter().enumerate() {
            let step = model
                .decode(&Tensor::new(&[[id]], &Device::Cpu).unwrap(), &mut cache)
                .unwrap();
            let got: Vec<f32> = step.flatten_all().unwrap().to_vec1().unwrap();
            let err = max_abs(&got, &want[t * v..(t + 1) * v]);
            assert!(err < 1e-4, "{name}: cached step {t} differs by {err}");
        }
    }
}

#[test]
fn greedy_and_beam_search_match_transformers_token_for_token() {
    let f = common::fixture("seq2seq.json");
    let settings = f["settings"].as_array().unwrap();
    let mut checked = 0;
    for (name, m) in f["models"].as_object().unwrap() {
        let model = load_folder(&dir(name), &Device::Cpu).unwrap();
        let base = SearchConfig::from_folder(&dir(name)).unwrap();
        for case in m["inputs"].as_array().unwrap() {
            let input = common::u32s(&case["input_ids"]);
            for s in settings {
                let sname = s["name"].as_str().unwrap();
                let mut cfg = base.clone();
                cfg.update(s).unwrap();
                let want = &case["runs"][sname];
                let out = generate(model.as_ref(), &input, &cfg).unwrap();
                assert_eq!(
                    out.ids,
                    common::u32s(&want["ids"]),
                    "{name} {sname} on {:?}",
                    case["text"]
                );
                if let Some(ws) = want["score"].as_f64() {
                    let got = out.score.unwrap() as f64;
                    assert!(
                        (got - ws).abs() <= 1e-4 * ws.abs().max(1.0),
                        "{name} {sname} on {:?}: score {got} vs {ws}",
                        case["text"]
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * 5 * settings.len());
}

#[test]
fn t5_pipelines_follow_transformers_conventions() {
    use lmkit::pipelines::text2text::{is_seq2seq, Text2TextPipeline};
    let f = common::fixture("seq2seq.json");
    let m = &f["models"]["tiny-t5"];
    let path = dir("tiny-t5");
    let p = Text2TextPipeline::new(path.to_str().unwrap()).unwrap();
    assert!(is_seq2seq(path.to_str().unwrap()));
    assert!(!is_seq2seq(
        common::fixtures().join("tiny-bert-cls").to_str().unwrap()
    ));
    // Prefixes: from task_specific_params when the task has an entry, T5's own otherwise.
    assert_eq!(p.prefix("summarization", "", "").unwrap(), "summarize: ");
    assert_eq!(
        p.prefix("translation_en_to_de", "en", "de").unwrap(),
        "translate English to German: "
    );
    assert_eq!(
        p.prefix("translation_ko_to_en", "ko", "en").unwrap(),
        "translate Korean to English: "
    );
    let want = &m["pipelines"];
    for (i, case) in m["inputs"].as_array().unwrap().iter().enumerate() {
        let text = case["text"].as_str().unwrap();
        let s = p
            .summarize(text, |s| {
                s.max_new_tokens = Some(10);
                s.num_beams = 2;
            })
            .unwrap();
        assert_eq!(
            s.output,
            want["summarization"][i].as_str().unwrap().trim(),
            "{text}"
        );
        assert!(s.method.contains("beam search (2 beams)"), "{}", s.method);
        let t = p
            .translate(text, "en", "de", |s| s.max_new_tokens = Some(10))
            .unwrap();
        assert_eq!(
            t.output,
            want["translation_en_to_de"][i].as_str().unwrap().trim(),
            "{text}"
        );
        assert!(t.method.contains("t5 greedy"), "{}", t.method);
    }
}

#[test]
fn seq2seq_bad_input_is_refused_clearly() {
    use lmkit::pipelines::text2text::Text2TextPipeline;
    let p = Text2TextPipeline::new(dir("tiny-bart").to_str().unwrap()).unwrap();
    let err = |r: anyhow::Result<lmkit::pipelines::prompted::Seq2SeqOutput>| {
        format!("{:#}", r.expect_err("should fail"))
    };
    assert!(err(p.summarize("  ", |_| {})).contains("empty"));
    assert!(err(p.translate("a cat", "en", "en", |_| {})).contains("both"));
    assert!(err(p.summarize("a cat", |s| s.num_beams = 0)).contains("num_beams"));
    assert!(err(p.summarize("a cat", |s| s.max_new_tokens = Some(0))).contains("max_length"));
    assert!(err(p.summarize("a cat", |s| s.bad_words_ids = vec![999]))
        .contains("outside the vocabulary"));
    // An encoder-only checkpoint is not a seq2seq model.
    let bert = common::fixtures().join("tiny-bert-cls");
    let e = Text2TextPipeline::new(bert.to_str().unwrap())
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("not a seq2seq"), "{e:#}");
    // Position limit: BART's learned positions end at max_position_embeddings.
    let long = "a ".repeat(200);
    let out = p.summarize(&long, |s| s.max_new_tokens = Some(3)).unwrap();
    assert!(out.output.len() < 100);
}

/// opus-mt layout: SentencePiece files + vocab.json (tests/fixtures/make_marian_spm_fixture.py:
/// transformers' MarianTokenizer with the sentencepiece library, and generate()).
#[test]
fn marian_sentencepiece_folders_tokenize_and_translate_like_transformers() {
    use lmkit::formats::spm::MarianTokenizer;
    use lmkit::pipelines::text2text::Text2TextPipeline;
    let f = common::fixture("marian_spm.json");
    let d = dir("tiny-marian-spm");
    let tok = MarianTokenizer::from_folder(&d).unwrap();
    for c in f["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let (tokens, ids) = tok.encode(text).unwrap();
        // The fixture's tokens are transformers' `convert_ids_to_tokens(ids)`: a piece missing
        // from vocab.json (SentencePiece passes unknown characters through) shows as <unk>.
        let tokens: Vec<String> = tokens
            .into_iter()
            .map(|t| {
                if tok.token_to_id(&t).is_some() {
                    t
                } else {
                    "<unk>".into()
                }
            })
            .collect();
        let want: Vec<String> = c["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert_eq!(tokens, want, "{text:?}");
        assert_eq!(ids, common::u32s(&c["ids"]), "{text:?}");
    }
    for c in f["decode"].as_array().unwrap() {
        let ids = common::u32s(&c["ids"]);
        assert_eq!(tok.decode(&ids, true), c["skip"].as_str().unwrap());
        assert_eq!(tok.decode(&ids, false), c["keep"].as_str().unwrap());
    }
    // The pipeline: the folder's generation defaults (transformers 5: 20 new tokens), greedy.
    let p = Text2TextPipeline::new(d.to_str().unwrap()).unwrap();
    assert_eq!(
        p.prefix("translation_en_to_ko", "en", "ko").unwrap(),
        ">>ko<< "
    );
    assert_eq!(p.prefix("translation_ko_to_fr", "ko", "fr").unwrap(), "");
    for c in f["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let (ids, _) = p.tokenizer.encode(text, 512).unwrap();
        let out = generate(p.model.as_ref(), &ids, &p.search).unwrap();
        assert_eq!(out.ids, common::u32s(&c["generated_ids"]), "{text:?}");
        let o = p.run(text, "", &p.search, "seq2seq").unwrap();
        assert_eq!(o.output, c["generated_text"].as_str().unwrap(), "{text:?}");
    }
    // A language tag in the text is one token, as in transformers.
    let t = p
        .translate("Translate this sentence, please.", "en", "ko", |_| {})
        .unwrap();
    let tagged = &f["cases"][4];
    assert_eq!(t.output, tagged["generated_text"].as_str().unwrap());
}
