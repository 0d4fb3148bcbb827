//! Fits the embedding zero-shot method's score calibration on the emotion validation split and
//! reports its accuracy on the test split (the six emotion names as candidate labels).
//!
//!     cargo run --release --example calibrate_zero_shot -- [MODEL] [TEMPLATE]
//!
//! MODEL defaults to sentence-transformers/all-MiniLM-L6-v2, TEMPLATE to "This example is {}.".
//! The fitted constants go into `pipelines::zero_shot::calibration`.

use anyhow::Result;
use lmkit::embed::{cosine_similarity, SentenceTransformer};
use lmkit::metrics::classification_report;
use lmkit::pipelines::zero_shot::{calibrated, Calibration};
use lmkit::prelude::*;

fn cosines(st: &SentenceTransformer, texts: &[String], hyps: &[String]) -> Result<Vec<Vec<f32>>> {
    let t = st.encode(texts)?;
    let h = st.encode(hyps)?;
    Ok(t.iter()
        .map(|tv| h.iter().map(|hv| cosine_similarity(tv, hv)).collect())
        .collect())
}

/// Mean negative log-likelihood of the true label under the single-label scores.
fn nll(cos: &[Vec<f32>], y: &[usize], cal: Calibration) -> f64 {
    cos.iter()
        .zip(y)
        .map(|(c, &k)| -(calibrated(c, cal, false)[k].max(1e-12) as f64).ln())
        .sum::<f64>()
        / y.len() as f64
}

/// Mean binary cross-entropy of the multi-label scores against "is the true label".
fn bce(cos: &[Vec<f32>], y: &[usize], cal: Calibration) -> f64 {
    let mut s = 0.0;
    for (c, &k) in cos.iter().zip(y) {
        for (j, p) in calibrated(c, cal, true).into_iter().enumerate() {
            let p = (p as f64).clamp(1e-12, 1.0 - 1e-12);
            s -= if j == k { p.ln() } else { (1.0 - p).ln() };
        }
    }
    s / (y.len() * cos[0].len()) as f64
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .first()
        .cloned()
        .unwrap_or("sentence-transformers/all-MiniLM-L6-v2".into());
    let template = args.get(1).cloned().unwrap_or("This example is {}.".into());
    let ds = load_dataset("emotion")?;
    let names = ds["train"].class_label("label")?.names.clone();
    let hyps: Vec<String> = names
        .iter()
        .map(|n| template.replacen("{}", n, 1))
        .collect();
    let st = SentenceTransformer::from_pretrained(&model, &LoadOptions::default())?;
    let split = |s: &str| -> Result<(Vec<String>, Vec<usize>)> {
        let d = &ds[s];
        let t = d.column("text")?.as_str().unwrap().to_vec();
        let y = d
            .column("label")?
            .as_int()
            .unwrap()
            .iter()
            .map(|&v| v as usize)
            .collect();
        Ok((t, y))
    };
    let (vt, vy) = split("validation")?;
    let (tt, ty) = split("test")?;
    eprintln!(
        "embedding {} validation + {} test texts with {model}",
        vt.len(),
        tt.len()
    );
    let vc = cosines(&st, &vt, &hyps)?;
    let tc = cosines(&st, &tt, &hyps)?;

    // Grid searches in log space: one parameter for single-label, two for multi-label.
    let logspace = |lo: f64, hi: f64, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (n - 1) as f64).exp() as f32)
            .collect()
    };
    let mut best = Calibration {
        temperature: 1.0,
        bias: 0.0,
        scale: 1.0,
    };
    let mut best_nll = f64::INFINITY;
    for t in logspace(0.002, 1.0, 400) {
        let c = Calibration {
            temperature: t,
            ..best
        };
        let v = nll(&vc, &vy, c);
        if v < best_nll {
            (best_nll, best) = (v, c);
        }
    }
    let mut best_bce = f64::INFINITY;
    let (mut bb, mut bs) = (0.0, 1.0);
    for b in (0..=120).map(|i| -0.2 + i as f32 * 0.01) {
        for s in logspace(0.002, 0.5, 120) {
            let v = bce(
                &vc,
                &vy,
                Calibration {
                    bias: b,
                    scale: s,
                    ..best
                },
            );
            if v < best_bce {
                (best_bce, bb, bs) = (v, b, s);
            }
        }
    }
    best.bias = bb;
    best.scale = bs;
    let pred: Vec<usize> = tc
        .iter()
        .map(|c| (0..c.len()).max_by(|&a, &b| c[a].total_cmp(&c[b])).unwrap())
        .collect();
    let report = classification_report(&ty, &pred, &names, 2, 0.0)?;
    println!("model: {model}\ntemplate: {template:?}");
    println!(
        "calibration: temperature {:.4}, bias {:.3}, scale {:.4} (validation NLL {best_nll:.4}, BCE {best_bce:.4})",
        best.temperature, best.bias, best.scale
    );
    println!(
        "test: accuracy {:.4}, macro F1 {:.4}, NLL {:.4} (uniform: {:.4})",
        report.accuracy,
        report.f1_macro(),
        nll(&tc, &ty, best),
        (names.len() as f64).ln()
    );
    println!("{report}");
    Ok(())
}
