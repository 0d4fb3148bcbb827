//! The default sentiment pipeline routes by script: texts mostly in Hangul go to the Korean
//! model, the rest to the English one, text by text, in input order, each output naming its
//! model; a Korean text never gets the English model's answer. The tiny fixture classifier
//! stands in for both models (a relabelled copy plays the Korean one): the routing is under
//! test here, not the models.

use lmkit::models::LoadOptions;
use lmkit::pipelines::text_classification::mostly_hangul;
use lmkit::pipelines::{PipelineOptions, PipelineOutput, TextClassificationPipeline};

fn fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
        .to_string_lossy()
        .to_string()
}

/// tiny-sst with its classes renamed 부정 / 긍정, so its answers can be told apart.
fn korean_copy(dir: &std::path::Path) -> String {
    let src = std::path::PathBuf::from(fixture("tiny-sst"));
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let cfg = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["id2label"] = serde_json::json!({"0": "부정", "1": "긍정"});
    v["label2id"] = serde_json::json!({"부정": 0, "긍정": 1});
    std::fs::write(&cfg, v.to_string()).unwrap();
    dir.to_string_lossy().to_string()
}

#[test]
fn hangul_majority_decides_the_script() {
    assert!(mostly_hangul("진정한 쓰레기"));
    assert!(mostly_hangul(
        "2시간이 아깝다. 내용도 단순 재미도 감동도 볼거리도 없다."
    ));
    assert!(mostly_hangul("이게 영화야? OK"));
    assert!(!mostly_hangul("I love 서울 and Busan"));
    assert!(!mostly_hangul("What a great movie!"));
    assert!(!mostly_hangul("12345 !!!"));
}

#[test]
fn mixed_input_goes_text_by_text_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let ko = korean_copy(tmp.path());
    let en = fixture("tiny-sst");
    let opts = LoadOptions::default();
    let p = TextClassificationPipeline::new(&en, &opts)
        .unwrap()
        .with_korean_route(&ko, &opts);
    let texts = [
        "what a lovely happy day",
        "진정한 쓰레기",
        "this is awful and sad",
        "재미가 없다.",
        "정말 최고의 영화",
    ];
    let routed = p.scores(&texts).unwrap();
    let english = TextClassificationPipeline::new(&en, &opts).unwrap();
    let korean = TextClassificationPipeline::new(&ko, &opts).unwrap();
    for (i, t) in texts.iter().enumerate() {
        let alone = if mostly_hangul(t) {
            korean.scores(&[*t]).unwrap()
        } else {
            english.scores(&[*t]).unwrap()
        };
        assert_eq!(routed[i][0].label, alone[0][0].label, "text {i}");
        assert!(
            (routed[i][0].score - alone[0][0].score).abs() < 1e-6,
            "text {i}"
        );
        let korean_label = ["부정", "긍정"].contains(&routed[i][0].label.as_str());
        assert_eq!(
            korean_label,
            mostly_hangul(t),
            "text {i} went to the wrong model"
        );
        assert_eq!(p.model_for(t), if mostly_hangul(t) { &ko } else { &en });
    }
    // Through the Pipeline enum the output names each text's model.
    let out = lmkit::pipelines::Pipeline::TextClassification(p)
        .run(&texts, &PipelineOptions::default())
        .unwrap();
    for (o, t) in out.iter().zip(texts) {
        let PipelineOutput::Classification { model, text, .. } = o else {
            panic!("not a classification")
        };
        assert_eq!(text, t);
        assert_eq!(
            model.as_deref(),
            Some(if mostly_hangul(t) { &ko[..] } else { &en[..] })
        );
    }
}

#[test]
fn a_missing_korean_default_is_an_error_that_says_how_to_build_it() {
    // An empty store: lmkit/sentiment-nsmc is not built there.
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("LMKIT_HOME", home.path());
    let opts = LoadOptions::default();
    let p = TextClassificationPipeline::new(&fixture("tiny-sst"), &opts)
        .unwrap()
        .with_korean_route("lmkit/sentiment-nsmc", &opts);
    // English-only input does not need it.
    assert_eq!(p.scores(&["a lovely day"]).unwrap().len(), 1);
    let e = p
        .scores(&["a lovely day", "진정한 쓰레기"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input 2 is Korean")
            && e.contains("lmkit fetch lmkit/sentiment-nsmc")
            && e.contains("not used for Korean text"),
        "{e}"
    );
}
