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
use lmkit::models::seq2seq::{load_folder, Seq2SeqModel};
use lmkit::search::{generate, SearchConfig};

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
        .flat_map(|r| common::floats(r))
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
