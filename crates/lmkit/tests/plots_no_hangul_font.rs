//! The control for `plots_hangul.rs`: with no Hangul font registered (its own process), the
//! embedded DejaVu Sans draws every Hangul syllable as the same box, so swapping two Korean
//! labels changes no pixel. This is the failure that test guards against.

use lmkit::plot::{save, BarChart};

#[test]
fn without_a_hangul_font_korean_labels_are_indistinguishable() {
    let dir = tempfile::tempdir().unwrap();
    let png = |names: [&str; 2], stem: &str| {
        let chart = BarChart {
            title: "감성 분포".into(),
            x_label: "label_name".into(),
            y_label: "count".into(),
            bars: names.iter().map(|n| (n.to_string(), 3.0)).collect(),
        };
        std::fs::read(&save(&chart, &dir.path().join(stem)).unwrap()[0]).unwrap()
    };
    assert_eq!(png(["긍정", "부정"], "a"), png(["부정", "긍정"], "b"));
}
