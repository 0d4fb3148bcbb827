//! Tokenizer files in a Hugging Face model folder: which files make a tokenizer, copying them,
//! and building a byte-level BPE tokenizer from GPT-2's vocab.json + merges.txt.

use std::path::Path;

use anyhow::Result;
use tokenizers::Tokenizer;

/// Files that make up a tokenizer in a Hugging Face folder.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
];

/// GPT-2 style byte-level BPE from vocab.json + merges.txt.
pub fn byte_level_bpe(vocab: &Path, merges: &Path) -> Result<Tokenizer> {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .build()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read {} / {}: {e}",
                vocab.display(),
                merges.display()
            )
        })?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.with_post_processor(Some(ByteLevel::new(false, true, true)));
    Ok(tok)
}

/// Copies the tokenizer files of one model folder into another (for a saved fine-tune).
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> Result<()> {
    for f in TOKENIZER_FILES {
        let src = from.join(f);
        if src.is_file() {
            let bytes = std::fs::read(&src)?;
            crate::util::write_atomic(&to.join(f), &bytes)?;
        }
    }
    Ok(())
}
