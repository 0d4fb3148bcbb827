//! Charts draw Hangul: Korean titles and class names render as glyphs in NanumGothic (fetched
//! into the store on first use), not as the boxes of a font without Hangul.
//! `plots_no_hangul_font.rs` is the control: without the font, the same check fails.

use lmkit::plot::{save, BarChart};

fn chart(names: [&str; 2]) -> BarChart {
    BarChart {
        title: "감성 분포".into(),
        x_label: "label_name".into(),
        y_label: "count".into(),
        bars: names.iter().map(|n| (n.to_string(), 3.0)).collect(),
    }
}

/// The PNG of a chart with these two class names (equal bars: only the text differs).
fn png_of(names: [&str; 2], dir: &std::path::Path, stem: &str) -> Vec<u8> {
    let files = save(&chart(names), &dir.join(stem)).unwrap();
    assert!(files[1].extension().unwrap() == "svg");
    std::fs::read(&files[0]).unwrap()
}

#[test]
fn two_different_korean_labels_draw_different_pixels() {
    lmkit::hub::fonts::register();
    let dir = tempfile::tempdir().unwrap();
    let a = png_of(["긍정", "부정"], dir.path(), "a");
    let b = png_of(["부정", "긍정"], dir.path(), "b");
    assert_ne!(
        a, b,
        "swapping two Korean labels left every pixel the same: Hangul draws as boxes"
    );
    let svg = std::fs::read_to_string(dir.path().join("a.svg")).unwrap();
    assert!(svg.contains("긍정") && svg.contains("NanumGothic"), "{svg}");
}
