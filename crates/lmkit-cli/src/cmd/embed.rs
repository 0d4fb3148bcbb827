//! `lmkit embed`: sentence embeddings, and their cosine similarities.

use anyhow::Result;
use lmkit::prelude::*;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    model: String,
    /// One JSON object per input: {"text":..., "embedding":[...]}.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 32, value_parser = super::at_least_1)]
    batch_size: usize,
    /// A named prompt of the model (multilingual-e5: query, the default, or passage).
    #[arg(long)]
    prompt: Option<String>,
    /// int8 encoder projections: faster on the CPU, a small quantization error (README).
    #[arg(long)]
    int8: bool,
    /// fp32, or bf16: bf16 operands with f32 sums on AMX or AVX512-BF16 (README, "CPU kernels").
    #[arg(long, value_enum, default_value_t = super::PrecisionArg::Fp32)]
    precision: super::PrecisionArg,
    texts: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    let texts = super::texts_or_stdin(a.texts)?;
    let mut st =
        SentenceTransformer::from_pretrained(&a.model, &super::load_options(a.int8, a.precision)?)?;
    st.batch_size = a.batch_size;
    let vecs = st.encode_with_prompt(&texts, a.prompt.as_deref())?;
    for (text, v) in texts.iter().zip(&vecs) {
        if a.json {
            println!("{}", serde_json::json!({"text": text, "embedding": v}));
        } else {
            println!("{text}\n  {}", vector_head(v));
        }
    }
    if !a.json && texts.len() > 1 {
        println!("cosine similarity:");
        for i in 0..texts.len() {
            for j in i + 1..texts.len() {
                let c = lmkit::embed::cosine_similarity(&vecs[i], &vecs[j]);
                println!("  {i} vs {j}: {c:.4}");
            }
        }
    }
    Ok(())
}

/// The first six values and the length: `[+0.0123, ..., ...] (384 dims)`.
pub fn vector_head(v: &[f32]) -> String {
    let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:+.4}")).collect();
    format!("[{}, ...] ({} dims)", head.join(", "), v.len())
}
