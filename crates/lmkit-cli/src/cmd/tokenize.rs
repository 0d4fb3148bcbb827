//! `lmkit tokenize`: tokens and ids of texts.

use anyhow::Result;
use lmkit::prelude::*;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    model: String,
    /// One JSON object per input: text, tokens, input_ids, attention_mask.
    #[arg(long)]
    json: bool,
    /// Truncate to this many tokens (default: the tokenizer's model_max_length).
    #[arg(long, value_parser = super::token_length)]
    max_length: Option<usize>,
    texts: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    let texts = super::texts_or_stdin(a.texts)?;
    let tok = AutoTokenizer::from_pretrained(&a.model)?;
    let enc = tok.encode_batch(
        &texts,
        EncodeOptions {
            padding: Padding::None,
            max_length: a.max_length,
            add_special_tokens: true,
        },
    )?;
    for (i, text) in texts.iter().enumerate() {
        if a.json {
            let v = serde_json::json!({
                "text": text,
                "tokens": enc.tokens[i],
                "input_ids": enc.input_ids[i],
                "attention_mask": enc.attention_mask[i],
                "token_type_ids": enc.token_type_ids[i],
            });
            println!("{v}");
        } else {
            println!("{text}");
            println!("  tokens:    {}", enc.tokens[i].join(" "));
            println!("  input_ids: {:?}", enc.input_ids[i]);
            if enc.truncated[i] > 0 {
                println!("  (truncated: {} tokens dropped)", enc.truncated[i]);
            }
        }
    }
    Ok(())
}
