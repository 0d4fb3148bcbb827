//! Measures the default translation and summarization pipelines (prompted LLMs) with BLEU and
//! ROUGE on the project's data: the ko-en news dev set (first N pairs, both directions), the
//! WMT19 en-de samples, XSum and CNN/DailyMail samples.
//!
//!     cargo run --release --example eval_generation -- [N]      # N ko-en pairs (default 20)

use anyhow::{Context, Result};
use lmkit::metrics::bleu::{corpus_bleu, BleuTokenizer};
use lmkit::pipelines::prompted::{PromptedPipeline, ENGLISH_LLM, MULTILINGUAL_LLM};

fn jsonl(path: &str) -> Result<Vec<serde_json::Value>> {
    let p = format!("../../../shared/data/{path}");
    let p = if std::path::Path::new(&p).exists() {
        p
    } else {
        format!("../shared/data/{path}")
    };
    std::fs::read_to_string(&p)
        .with_context(|| p.clone())?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

fn main() -> Result<()> {
    lmkit::models::llm::prefer_f32_weights();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut gemma = PromptedPipeline::new(MULTILINGUAL_LLM)?;
    gemma.max_new_tokens = 96;
    let koen: Vec<(String, String)> = jsonl("translation/ko-en/korean-english-park.dev.jsonl")?
        .into_iter()
        .take(n)
        .map(|v| {
            (
                v["translation"]["ko"].as_str().unwrap().to_string(),
                v["translation"]["en"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut run = |src: &str, tgt: &str, pairs: &[(String, String)]| -> Result<Vec<String>> {
        let t0 = std::time::Instant::now();
        let mut out = vec![];
        for (s, _) in pairs {
            out.push(gemma.translate(s, src, tgt)?.output);
        }
        eprintln!(
            "{src}->{tgt}: {} sentences in {:.0} s",
            pairs.len(),
            t0.elapsed().as_secs_f64()
        );
        Ok(out)
    };
    let refs =
        |pairs: &[(String, String)]| vec![pairs.iter().map(|p| p.1.clone()).collect::<Vec<_>>()];
    let ko_en = run("ko", "en", &koen)?;
    let b = corpus_bleu(&ko_en, &refs(&koen), BleuTokenizer::T13a, false, false)?;
    println!(
        "ko->en ({} news pairs, {MULTILINGUAL_LLM} few-shot): {b}",
        koen.len()
    );
    println!("  e.g. {:?} -> {:?}", koen[0].0, ko_en[0]);
    let enko: Vec<(String, String)> = koen.iter().map(|(k, e)| (e.clone(), k.clone())).collect();
    let en_ko = run("en", "ko", &enko)?;
    for tok in [BleuTokenizer::T13a, BleuTokenizer::Char] {
        let b = corpus_bleu(&en_ko, &refs(&enko), tok, false, false)?;
        println!("en->ko ({} news pairs): {b}", enko.len());
    }
    println!("  e.g. {:?} -> {:?}", enko[0].0, en_ko[0]);
    let ende: Vec<(String, String)> = jsonl("translation/wmt19/newstest2019.en-de.jsonl")?
        .into_iter()
        .map(|v| {
            (
                v["translation"]["en"].as_str().unwrap().to_string(),
                v["translation"]["de"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let en_de = run("en", "de", &ende)?;
    let b = corpus_bleu(&en_de, &refs(&ende), BleuTokenizer::T13a, false, false)?;
    println!("en->de (WMT19 newstest, {} sentences): {b}", ende.len());

    let mut smol = PromptedPipeline::new(ENGLISH_LLM)?;
    smol.max_new_tokens = 80;
    for (file, doc, summ) in [
        ("summarization/xsum_sample.jsonl", "document", "summary"),
        (
            "summarization/cnn_dailymail_3.0.0_validation_15.jsonl",
            "article",
            "highlights",
        ),
    ] {
        let rows = jsonl(file)?;
        let t0 = std::time::Instant::now();
        let mut scores = vec![];
        let mut first = None;
        for r in &rows {
            let o = smol.summarize(r[doc].as_str().unwrap())?;
            first.get_or_insert_with(|| o.output.clone());
            scores.push(lmkit::metrics::rouge::score(
                r[summ].as_str().unwrap(),
                &o.output,
            ));
        }
        let m = lmkit::metrics::rouge::mean_f(&scores);
        println!(
            "{file} ({} documents, {ENGLISH_LLM} chat instruction, {:.0} s): ROUGE-1 {:.2} ROUGE-2 {:.2} ROUGE-L {:.2} ROUGE-Lsum {:.2}",
            rows.len(),
            t0.elapsed().as_secs_f64(),
            100.0 * m[0],
            100.0 * m[1],
            100.0 * m[2],
            100.0 * m[3]
        );
        println!("  e.g. {:?}", first.unwrap_or_default());
    }
    Ok(())
}
