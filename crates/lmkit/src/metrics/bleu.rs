//! Corpus BLEU as sacreBLEU computes it (its default settings: 13a tokenization, exponential
//! smoothing, closest reference length), so numbers here are comparable with published
//! sacreBLEU scores. Tokenizers: `13a` (default), `char`, `none`. No crate reimplements
//! sacreBLEU; this one is checked against it on fixtures (tests/fixtures/text_metrics.json).

use std::collections::HashMap;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use regex::Regex;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BleuTokenizer {
    /// mteval-v13a: punctuation split off, periods/commas kept inside numbers.
    T13a,
    /// Every character (spaces removed) is a token: for languages without spaces.
    Char,
    /// Split on whitespace only.
    None,
}

impl BleuTokenizer {
    pub fn name(&self) -> &'static str {
        match self {
            Self::T13a => "13a",
            Self::Char => "char",
            Self::None => "none",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "13a" => Self::T13a,
            "char" => Self::Char,
            "none" => Self::None,
            other => bail!("unknown BLEU tokenizer {other:?} (13a, char, none)"),
        })
    }

    pub fn tokenize(&self, line: &str) -> Vec<String> {
        match self {
            Self::T13a => tokenize_13a(line),
            Self::Char => line
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(String::from)
                .collect(),
            Self::None => line.split_whitespace().map(String::from).collect(),
        }
    }
}

fn res() -> &'static [(Regex, &'static str); 4] {
    static R: OnceLock<[(Regex, &'static str); 4]> = OnceLock::new();
    R.get_or_init(|| {
        [
            // Most ASCII punctuation and symbols, but not ' - . , (handled below).
            (Regex::new(r"([\{-~\[-` -&\(-\+:-@/])").unwrap(), " $1 "),
            // Period and comma, unless between digits.
            (Regex::new(r"([^0-9])([\.,])").unwrap(), "$1 $2 "),
            (Regex::new(r"([\.,])([^0-9])").unwrap(), " $1 $2"),
            // A dash after a digit.
            (Regex::new(r"([0-9])(-)").unwrap(), "$1 $2 "),
        ]
    })
}

/// sacreBLEU's `13a` tokenizer.
pub fn tokenize_13a(line: &str) -> Vec<String> {
    let mut s = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if s.contains('&') {
        s = s
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut s = format!(" {s} ");
    for (re, rep) in res() {
        s = re.replace_all(&s, *rep).into_owned();
    }
    s.split_whitespace().map(String::from).collect()
}

/// A corpus score with the statistics behind it (sacreBLEU's `BLEUScore`).
#[derive(Clone, Debug, Serialize)]
pub struct Bleu {
    pub score: f64,
    pub counts: [usize; 4],
    pub totals: [usize; 4],
    pub precisions: [f64; 4],
    pub bp: f64,
    pub sys_len: usize,
    pub ref_len: usize,
    /// e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:lmkit`
    pub signature: String,
}

impl std::fmt::Display for Bleu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BLEU = {:.2} {:.1}/{:.1}/{:.1}/{:.1} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {}) [{}]",
            self.score,
            self.precisions[0],
            self.precisions[1],
            self.precisions[2],
            self.precisions[3],
            self.bp,
            self.sys_len as f64 / self.ref_len.max(1) as f64,
            self.sys_len,
            self.ref_len,
            self.signature
        )
    }
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    for w in tokens.windows(n) {
        *m.entry(w).or_insert(0) += 1;
    }
    m
}

/// `BLEU(tokenize, lowercase).corpus_score(hyps, refs)`: `refs` are reference streams, each
/// aligned with `hyps`. `effective_order`: average only the n-gram orders that exist (what
/// sacreBLEU uses for sentence-level scores).
pub fn corpus_bleu<S: AsRef<str>>(
    hyps: &[S],
    refs: &[Vec<S>],
    tokenizer: BleuTokenizer,
    lowercase: bool,
    effective_order: bool,
) -> Result<Bleu> {
    if refs.is_empty() {
        bail!("BLEU needs at least one reference stream")
    }
    for (k, r) in refs.iter().enumerate() {
        if r.len() != hyps.len() {
            bail!(
                "reference stream {} has {} lines, the hypotheses {}",
                k + 1,
                r.len(),
                hyps.len()
            )
        }
    }
    let prep = |s: &str| {
        let s = if lowercase {
            s.to_lowercase()
        } else {
            s.to_string()
        };
        tokenizer.tokenize(s.trim_end())
    };
    let (mut counts, mut totals) = ([0usize; 4], [0usize; 4]);
    let (mut sys_len, mut ref_len) = (0usize, 0usize);
    for (i, h) in hyps.iter().enumerate() {
        let hyp = prep(h.as_ref());
        let rs: Vec<Vec<String>> = refs.iter().map(|r| prep(r[i].as_ref())).collect();
        // The reference length closest to the hypothesis length (the shorter on a tie).
        let closest = rs
            .iter()
            .map(|r| r.len())
            .min_by_key(|&l| ((l as i64 - hyp.len() as i64).abs(), l))
            .unwrap_or(0);
        sys_len += hyp.len();
        ref_len += closest;
        for n in 1..=4 {
            let h = ngrams(&hyp, n);
            let mut max_ref: HashMap<&[String], usize> = HashMap::new();
            for r in &rs {
                for (g, c) in ngrams(r, n) {
                    let e = max_ref.entry(g).or_insert(0);
                    *e = (*e).max(c);
                }
            }
            for (g, c) in &h {
                counts[n - 1] += (*c).min(max_ref.get(g).copied().unwrap_or(0));
            }
            totals[n - 1] += hyp.len().saturating_sub(n - 1);
        }
    }
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    // Exponential smoothing (mteval's): each order with no match gets 1 / (2^k * total).
    let mut precisions = [0.0f64; 4];
    let mut smooth = 1.0f64;
    let mut eff_order = 4;
    for n in 1..=4 {
        if totals[n - 1] == 0 {
            break;
        }
        if effective_order {
            eff_order = n;
        }
        precisions[n - 1] = if counts[n - 1] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * totals[n - 1] as f64)
        } else {
            100.0 * counts[n - 1] as f64 / totals[n - 1] as f64
        };
    }
    let score = if counts[0] == 0 {
        0.0
    } else {
        let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
        let s: f64 = precisions[..eff_order].iter().map(|&p| log(p)).sum();
        bp * (s / eff_order as f64).exp()
    };
    Ok(Bleu {
        score,
        counts,
        totals,
        precisions,
        bp,
        sys_len,
        ref_len,
        signature: format!(
            "nrefs:{}|case:{}|eff:{}|tok:{}|smooth:exp|version:lmkit",
            refs.len(),
            if lowercase { "lc" } else { "mixed" },
            if effective_order { "yes" } else { "no" },
            tokenizer.name()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_13a_splits_punctuation_but_not_numbers() {
        assert_eq!(
            tokenize_13a("Hello, world! It costs $3.50 (approx.)"),
            ["Hello", ",", "world", "!", "It", "costs", "$", "3.50", "(", "approx", ".", ")"]
        );
    }

    #[test]
    fn identical_corpus_scores_100() {
        let h = ["the cat sat on the mat", "a dog barked loudly today"];
        let b = corpus_bleu(&h, &[h.to_vec()], BleuTokenizer::T13a, false, false).unwrap();
        assert!((b.score - 100.0).abs() < 1e-9, "{b}");
    }
}
