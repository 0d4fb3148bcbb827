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
use prost::Message;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::{Replace, ReplacePattern};
use tokenizers::normalizers::{Precompiled, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{NormalizerWrapper, Tokenizer};

use super::proto::sentencepiece::model_proto::sentence_piece::Type as PieceType;
use super::proto::sentencepiece::trainer_spec::ModelType;
use super::proto::sentencepiece::ModelProto;

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

impl SpmModel {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&bytes)
            .with_context(|| format!("{} is not a SentencePiece model file", path.display()))
    }

    /// Decodes a `ModelProto` (with prost, into the types generated from the official
    /// sentencepiece_model.proto: formats/proto, scripts/gen-proto.sh); fields it does not set
    /// take the .proto's defaults.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let m = ModelProto::decode(bytes).context("not a readable SentencePiece ModelProto")?;
        // Enums arrive as raw i32s and are kept as given (an unknown type stays visible), so
        // only a negative one, which no enum value is, is rejected.
        let enum_value =
            |v: i32, what: &str| u64::try_from(v).with_context(|| format!("{what} is {v}"));
        let pieces = m
            .pieces
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let (score, ty) = (p.score(), p.r#type.unwrap_or(PieceType::Normal as i32));
                Ok((
                    p.piece.with_context(|| format!("piece {i} has no text"))?,
                    score,
                    enum_value(ty, &format!("piece {i}: type"))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        if pieces.is_empty() {
            bail!("no pieces")
        }
        let model_type = m.trainer_spec.and_then(|t| t.model_type);
        let norm = m.normalizer_spec.unwrap_or_default();
        Ok(SpmModel {
            pieces,
            model_type: enum_value(
                model_type.unwrap_or(ModelType::Unigram as i32),
                "trainer_spec.model_type",
            )?,
            add_dummy_prefix: norm.add_dummy_prefix(),
            remove_extra_whitespaces: norm.remove_extra_whitespaces(),
            precompiled_charsmap: norm.precompiled_charsmap.unwrap_or_default(),
        })
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

#[cfg(test)]
mod tests {
    use super::super::proto::sentencepiece::model_proto::SentencePiece;
    use super::super::proto::sentencepiece::{NormalizerSpec, TrainerSpec};
    use super::*;

    fn piece(text: &str, score: f32, ty: Option<PieceType>) -> SentencePiece {
        SentencePiece {
            piece: Some(text.into()),
            score: Some(score),
            r#type: ty.map(|t| t as i32),
        }
    }

    #[test]
    fn fields_and_the_protos_defaults() -> Result<()> {
        let mut proto = ModelProto {
            pieces: vec![
                piece("<unk>", 0.0, Some(PieceType::Unknown)),
                piece("▁a", -1.5, None),
            ],
            ..Default::default()
        };
        let m = SpmModel::parse(&proto.encode_to_vec())?;
        assert_eq!(
            m.pieces,
            vec![("<unk>".into(), 0.0, 2), ("▁a".into(), -1.5, 1)]
        );
        assert!(m.add_dummy_prefix && m.remove_extra_whitespaces);
        assert!(m.precompiled_charsmap.is_empty());
        assert_eq!(m.model_type, 1);

        proto.trainer_spec = Some(TrainerSpec {
            model_type: Some(ModelType::Bpe as i32),
            ..Default::default()
        });
        proto.normalizer_spec = Some(NormalizerSpec {
            precompiled_charsmap: Some(vec![1, 2, 3]),
            add_dummy_prefix: Some(false),
            remove_extra_whitespaces: Some(false),
            ..Default::default()
        });
        let m = SpmModel::parse(&proto.encode_to_vec())?;
        assert!(!m.add_dummy_prefix && !m.remove_extra_whitespaces);
        assert_eq!(m.precompiled_charsmap, vec![1, 2, 3]);
        assert_eq!(m.model_type, 2);
        Ok(())
    }

    #[test]
    fn malformed_models_are_errors_not_panics() {
        let err = |b: &[u8]| format!("{:#}", SpmModel::parse(b).err().unwrap());
        assert!(err(&[]).contains("no pieces"));
        let mut p = ModelProto {
            pieces: vec![piece("a", 0.0, None), piece("b", 0.0, None)],
            ..Default::default()
        };
        p.pieces[1].piece = None;
        assert!(err(&p.encode_to_vec()).contains("piece 1 has no text"));
        p.pieces[1] = piece("b", 0.0, None);
        p.pieces[1].r#type = Some(-3);
        assert!(err(&p.encode_to_vec()).contains("piece 1: type is -3"));
        let bytes = ModelProto {
            pieces: vec![piece("a", 0.0, None)],
            ..Default::default()
        }
        .encode_to_vec();
        for cut in 1..bytes.len() {
            assert!(SpmModel::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn truncations_of_a_real_model_do_not_panic() -> Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/seq2seq/tiny-marian-spm/source.spm");
        let bytes = std::fs::read(&path)?;
        let m = SpmModel::parse(&bytes)?;
        assert_eq!(m.pieces.iter().filter(|p| p.2 == 2).count(), 1);
        assert!(!m.precompiled_charsmap.is_empty());
        // A cut between two top-level fields leaves a valid (smaller) model, so only "no panic"
        // holds for every cut; one byte short, the last field is cut and that must be an error.
        for cut in (1..bytes.len()).step_by(97) {
            let _ = SpmModel::parse(&bytes[..cut]);
        }
        let err = format!(
            "{:#}",
            SpmModel::parse(&bytes[..bytes.len() - 1]).err().unwrap()
        );
        assert!(
            err.contains("not a readable SentencePiece ModelProto"),
            "{err}"
        );
        Ok(())
    }
}
