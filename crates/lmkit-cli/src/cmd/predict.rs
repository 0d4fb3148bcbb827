//! `lmkit predict`: classify texts with a fine-tuned model, through the same
//! `TextClassificationPipeline` as `lmkit pipeline text-classification` (same scores, same
//! refusal of empty texts).

use anyhow::Result;
use lmkit::pipelines::TextClassificationPipeline;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: String,
    /// One JSON object per text: text, label, score, probabilities.
    #[arg(long)]
    json: bool,
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
    // Before loading the model: a bad input fails fast, with the pipeline's message.
    lmkit::pipelines::check_texts(&texts)?;
    let p = TextClassificationPipeline::new(&a.model, &super::load_options(a.int8, a.precision)?)?;
    for (text, ranked) in texts.iter().zip(p.scores(&texts)?) {
        let best = &ranked[0];
        if a.json {
            // In the model's label order, whatever the ranking.
            let probabilities: serde_json::Map<String, serde_json::Value> = p
                .model
                .labels
                .iter()
                .filter_map(|l| ranked.iter().find(|s| &s.label == l))
                .map(|s| (s.label.clone(), s.score.into()))
                .collect();
            let v = serde_json::json!({
                "text": text,
                "label": best.label,
                "score": best.score,
                "probabilities": probabilities,
            });
            println!("{v}");
        } else {
            println!("{:<10} {:.4}  {text}", best.label, best.score);
        }
    }
    Ok(())
}
