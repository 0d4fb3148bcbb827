//! SentencePiece model files (`.spm` / `.model`) and Marian's tokenizer built on them.
//!
//! opus-mt folders ship `source.spm`, `target.spm` and a `vocab.json` (piece -> id, with language
//! tags such as `>>ko<<`), not a tokenizer.json, and transformers has no fast tokenizer for them.
//! Here a unigram SentencePiece model becomes a `tokenizers` Unigram with the model's own
//! normalisation (its precompiled character map, e.g. nmt_nfkc), whitespace handling and "▁"
//! prefix; Marian's encode/decode around it follow transformers' `MarianTokenizer`
//! (tests/fixtures/make_marian_spm_fixture.py is the reference).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::{Replace, ReplacePattern};
use tokenizers::normalizers::{Precompiled, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{NormalizerWrapper, Tokenizer};

/// The parts of a SentencePiece `ModelProto` a tokenizer needs.
pub struct SpmModel {
    /// (piece, score, type): type 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte.
    pub pieces: Vec<(String, f32, u64)>,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    /// TrainerSpec.model_type: 1 unigram, 2 BPE, 3 word, 4 char.
    pub model_type: u64,
}

/// A protobuf reader for the three messages above. Hand-written because these few fields are
/// all lmkit reads: a protobuf crate would need the .proto compiled in for the same result.
struct Proto<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64,
    Bytes(&'a [u8]),
}

impl<'a> Proto<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).context("truncated varint")?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.context("field runs past the end of the message")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let n = self.varint()? as usize;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap())),
            w => bail!("unsupported protobuf wire type {w} (field {num})"),
        };
        Ok(Some((num, f)))
    }
}

impl SpmModel {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&bytes)
            .with_context(|| format!("{} is not a SentencePiece model file", path.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut m = SpmModel {
            pieces: vec![],
            precompiled_charsmap: vec![],
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            model_type: 1,
        };
        let mut p = Proto::new(bytes);
        while let Some((num, f)) = p.next()? {
            match (num, f) {
                (1, Field::Bytes(b)) => {
                    let (mut piece, mut score, mut ty) = (None, 0f32, 1u64);
                    let mut q = Proto::new(b);
                    while let Some((n, f)) = q.next()? {
                        match (n, f) {
                            (1, Field::Bytes(s)) => {
                                piece = Some(
                                    String::from_utf8(s.to_vec()).context("piece is not UTF-8")?,
                                )
                            }
                            (2, Field::Fixed32(x)) => score = f32::from_bits(x),
                            (3, Field::Varint(x)) => ty = x,
                            _ => {}
                        }
                    }
                    m.pieces
                        .push((piece.context("a piece without its text")?, score, ty));
                }
                (2, Field::Bytes(b)) => {
                    let mut q = Proto::new(b);
                    while let Some((n, f)) = q.next()? {
                        if let (3, Field::Varint(x)) = (n, f) {
                            m.model_type = x;
                        }
                    }
                }
                (3, Field::Bytes(b)) => {
                    let mut q = Proto::new(b);
                    while let Some((n, f)) = q.next()? {
                        match (n, f) {
                            (2, Field::Bytes(c)) => m.precompiled_charsmap = c.to_vec(),
                            (3, Field::Varint(x)) => m.add_dummy_prefix = x != 0,
                            (4, Field::Varint(x)) => m.remove_extra_whitespaces = x != 0,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if m.pieces.is_empty() {
            bail!("no pieces")
        }
        Ok(m)
    }

    /// A `tokenizers` tokenizer that segments like this model (unigram models only).
    pub fn to_tokenizer(&self) -> Result<Tokenizer> {
        if self.model_type != 1 {
            bail!(
                "SentencePiece model type {} is not supported (only unigram, type 1)",
                self.model_type
            )
        }
        let unk = self.pieces.iter().position(|p| p.2 == 2);
        let vocab = self
            .pieces
            .iter()
            .map(|(p, s, _)| (p.clone(), *s as f64))
            .collect();
        let model = Unigram::from(vocab, unk, false).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut tok = Tokenizer::new(model);
        let mut norms: Vec<NormalizerWrapper> = vec![];
        if !self.precompiled_charsmap.is_empty() {
            norms.push(
                Precompiled::from(&self.precompiled_charsmap)
                    .map_err(|e| anyhow::anyhow!("precompiled_charsmap: {e}"))?
                    .into(),
            );
        }
        if self.remove_extra_whitespaces {
            norms.push(Strip::new(true, true).into());
            norms.push(
                Replace::new(ReplacePattern::Regex(" {2,}".into()), " ")
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .into(),
            );
        }
        tok.with_normalizer(Some(Sequence::new(norms)));
        let scheme = if self.add_dummy_prefix {
            PrependScheme::Always
        } else {
            PrependScheme::Never
        };
        tok.with_pre_tokenizer(Some(Metaspace::new('▁', scheme, true)));
        Ok(tok)
    }
}

/// transformers' `MarianTokenizer`: SentencePiece pieces, ids from vocab.json, `</s>` appended,
/// a leading language tag (`>>ko<<`) kept whole.
#[derive(Clone)]
pub struct MarianTokenizer {
    source: Tokenizer,
    encoder: HashMap<String, u32>,
    decoder: HashMap<u32, String>,
    specials: HashSet<String>,
    pub unk_id: u32,
    pub eos_id: u32,
    pub pad_id: Option<u32>,
}

impl MarianTokenizer {
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let spm = dir.join("source.spm");
        if !spm.is_file() {
            bail!("{} has no source.spm", dir.display())
        }
        if dir.join("target_vocab.json").is_file() {
            bail!(
                "{}: separate source/target vocabularies are not supported",
                dir.display()
            )
        }
        let source = SpmModel::read(&spm)?.to_tokenizer()?;
        let vp = dir.join("vocab.json");
        let encoder: HashMap<String, u32> = serde_json::from_str(
            &std::fs::read_to_string(&vp).with_context(|| format!("reading {}", vp.display()))?,
        )
        .with_context(|| format!("{}: expected an object of piece -> id", vp.display()))?;
        let id = |t: &str| encoder.get(t).copied();
        let unk_id = id("<unk>").with_context(|| format!("{}: no <unk> entry", vp.display()))?;
        let eos_id = id("</s>").with_context(|| format!("{}: no </s> entry", vp.display()))?;
        let decoder = encoder.iter().map(|(k, v)| (*v, k.clone())).collect();
        Ok(Self {
            source,
            specials: ["</s>", "<unk>", "<pad>"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            pad_id: id("<pad>"),
            encoder,
            decoder,
            unk_id,
            eos_id,
        })
    }

    pub fn token_to_id(&self, t: &str) -> Option<u32> {
        self.encoder.get(t).copied()
    }

    /// Pieces (language tag first, if any) and their ids, `</s>` appended.
    pub fn encode(&self, text: &str) -> Result<(Vec<String>, Vec<u32>)> {
        let (mut tokens, rest) = match text.find("<<") {
            Some(end) if text.starts_with(">>") => {
                (vec![text[..end + 2].to_string()], &text[end + 2..])
            }
            _ => (vec![], text),
        };
        let enc = self
            .source
            .encode(rest, false)
            .map_err(|e| anyhow::anyhow!("tokenizing {rest:?}: {e}"))?;
        tokens.extend(enc.get_tokens().iter().cloned());
        let mut ids: Vec<u32> = tokens
            .iter()
            .map(|t| self.encoder.get(t).copied().unwrap_or(self.unk_id))
            .collect();
        tokens.push("</s>".into());
        ids.push(self.eos_id);
        Ok((tokens, ids))
    }

    /// Ids back to text: pieces joined, "▁" as spaces, special tokens kept or skipped.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        fn pieces(cur: &mut Vec<&str>) -> String {
            let s = cur.concat().replace('▁', " ");
            cur.clear();
            s.strip_prefix(' ').map(String::from).unwrap_or(s)
        }
        let mut out = String::new();
        let mut cur: Vec<&str> = vec![];
        for id in ids {
            let Some(t) = self.decoder.get(id) else {
                continue;
            };
            if self.specials.contains(t) {
                if skip_special_tokens {
                    continue;
                }
                out += &pieces(&mut cur);
                out += t;
                out.push(' ');
            } else {
                cur.push(t);
            }
        }
        out += &pieces(&mut cur);
        out.trim().to_string()
    }
}
