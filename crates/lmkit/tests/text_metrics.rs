//! BLEU and ROUGE against sacreBLEU 2.6 and rouge-score 0.1.2 on fixtures
//! (tests/fixtures/make_text_metric_fixtures.py). Counts and tokens must be equal; scores are
//! sums of a few logs then one exp in f64, so 1e-9 relative covers evaluation-order rounding.

mod common;

use lmkit::metrics::bleu::{corpus_bleu, BleuTokenizer};

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

#[test]
fn bleu_equals_sacrebleu() {
    let f = common::fixture("text_metrics.json");
    let mut checked = 0;
    for c in f["bleu"].as_array().unwrap() {
        let Ok(tok) = BleuTokenizer::parse(c["tokenize"].as_str().unwrap()) else {
            continue; // intl is not implemented
        };
        let hyps = strs(&c["hyps"]);
        let refs: Vec<Vec<String>> = c["refs"].as_array().unwrap().iter().map(strs).collect();
        let b = corpus_bleu(
            &hyps,
            &refs,
            tok,
            c["lowercase"].as_bool().unwrap(),
            c["effective_order"].as_bool().unwrap(),
        )
        .unwrap();
        let name = c["name"].as_str().unwrap();
        let want_tok = strs(&c["hyps_tokenized"]);
        for (h, w) in hyps.iter().zip(&want_tok) {
            let h = if c["lowercase"].as_bool().unwrap() {
                h.to_lowercase()
            } else {
                h.clone()
            };
            // sacreBLEU splits its tokenized string on whitespace afterwards.
            let want: Vec<&str> = w.split_whitespace().collect();
            assert_eq!(tok.tokenize(h.trim_end()), want, "{name}: tokens");
        }
        let u = |v: &serde_json::Value| -> Vec<usize> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect()
        };
        assert_eq!(b.counts.to_vec(), u(&c["counts"]), "{name}: counts");
        assert_eq!(b.totals.to_vec(), u(&c["totals"]), "{name}: totals");
        assert_eq!(b.sys_len as u64, c["sys_len"].as_u64().unwrap(), "{name}");
        assert_eq!(b.ref_len as u64, c["ref_len"].as_u64().unwrap(), "{name}");
        assert!(close(b.bp, c["bp"].as_f64().unwrap()), "{name}: bp");
        assert!(
            close(b.score, c["score"].as_f64().unwrap()),
            "{name}: {} vs {}",
            b.score,
            c["score"]
        );
        checked += 1;
    }
    assert!(checked >= 16, "only {checked} cases checked");
    for c in f["sentence_bleu"].as_array().unwrap() {
        let b = corpus_bleu(
            &[c["hyp"].as_str().unwrap()],
            &c["refs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| vec![r.as_str().unwrap()])
                .collect::<Vec<_>>(),
            BleuTokenizer::T13a,
            false,
            true,
        )
        .unwrap();
        assert!(
            close(b.score, c["score"].as_f64().unwrap()),
            "{}: {}",
            c["name"],
            b.score
        );
    }
}

#[test]
fn rouge_equals_rouge_score() {
    let f = common::fixture("text_metrics.json");
    for c in f["rouge"].as_array().unwrap() {
        let (t, p) = (
            c["target"].as_str().unwrap(),
            c["prediction"].as_str().unwrap(),
        );
        let name = c["name"].as_str().unwrap();
        assert_eq!(
            lmkit::metrics::rouge::tokenize(t),
            strs(&c["target_tokens"]),
            "{name}"
        );
        let r = serde_json::to_value(lmkit::metrics::rouge::score(t, p)).unwrap();
        for k in ["rouge1", "rouge2", "rougeL", "rougeLsum"] {
            for m in ["precision", "recall", "fmeasure"] {
                let (got, want) = (r[k][m].as_f64().unwrap(), c[k][m].as_f64().unwrap());
                assert!(close(got, want), "{name} {k} {m}: {got} vs {want}");
            }
        }
    }
}
