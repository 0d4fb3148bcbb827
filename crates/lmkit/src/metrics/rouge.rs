//! ROUGE-1/2/L/Lsum as Google's `rouge-score` computes them with its default tokenizer and no
//! stemmer (the settings of `evaluate.load("rouge")`): lower-case, every run of characters
//! outside [a-z0-9] is a separator. Note what that implies: text in other scripts (Korean)
//! has no tokens at all, so Korean ROUGE needs `tokens_from` with another tokenizer.

use std::collections::HashMap;

use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Score {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

impl Score {
    fn new(hits: usize, pred: usize, target: usize) -> Self {
        let precision = if pred > 0 {
            hits as f64 / pred as f64
        } else {
            0.0
        };
        let recall = if target > 0 {
            hits as f64 / target as f64
        } else {
            0.0
        };
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            fmeasure,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Rouge {
    pub rouge1: Score,
    pub rouge2: Score,
    #[serde(rename = "rougeL")]
    pub rouge_l: Score,
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: Score,
}

/// rouge-score's default tokenizer (no stemming).
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = vec![];
    let mut cur = String::new();
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn count_ngrams(x: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m: HashMap<&[String], usize> = HashMap::new();
    for w in x.windows(n) {
        *m.entry(w).or_insert(0) += 1;
    }
    m
}

fn ngram_score(t: &[String], p: &[String], n: usize) -> Score {
    let (ct, cp) = (count_ngrams(t, n), count_ngrams(p, n));
    let hits: usize = ct
        .iter()
        .map(|(g, c)| (*c).min(cp.get(g).copied().unwrap_or(0)))
        .sum();
    Score::new(
        hits,
        p.len().saturating_sub(n - 1),
        t.len().saturating_sub(n - 1),
    )
}

fn lcs_table(a: &[String], b: &[String]) -> Vec<Vec<usize>> {
    let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i][j] = if a[i - 1] == b[j - 1] {
                t[i - 1][j - 1] + 1
            } else {
                t[i - 1][j].max(t[i][j - 1])
            };
        }
    }
    t
}

/// Indices into `r` of one LCS of `r` and `c`, found by rouge-score's backtracking order.
fn lcs_indices(r: &[String], c: &[String]) -> Vec<usize> {
    let t = lcs_table(r, c);
    let (mut i, mut j) = (r.len(), c.len());
    let mut out = vec![];
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i][j - 1] > t[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

/// Summary-level LCS over "\n"-separated sentences (union LCS per target sentence, each token
/// counted at most as often as it occurs on both sides).
fn lsum(target: &str, prediction: &str, tok: &dyn Fn(&str) -> Vec<String>) -> Score {
    let sents = |s: &str| -> Vec<Vec<String>> {
        s.split('\n').map(tok).filter(|t| !t.is_empty()).collect()
    };
    let (ts, ps) = (sents(target), sents(prediction));
    let m: usize = ts.iter().map(|s| s.len()).sum();
    let n: usize = ps.iter().map(|s| s.len()).sum();
    if m == 0 || n == 0 {
        return Score::default();
    }
    let mut cnt_t: HashMap<&str, usize> = HashMap::new();
    let mut cnt_p: HashMap<&str, usize> = HashMap::new();
    for w in ts.iter().flatten() {
        *cnt_t.entry(w).or_insert(0) += 1;
    }
    for w in ps.iter().flatten() {
        *cnt_p.entry(w).or_insert(0) += 1;
    }
    let mut hits = 0;
    for r in &ts {
        let mut union: Vec<usize> = ps.iter().flat_map(|c| lcs_indices(r, c)).collect();
        union.sort_unstable();
        union.dedup();
        for i in union {
            let w = r[i].as_str();
            let (a, b) = (cnt_p.get(w).copied(), cnt_t.get(w).copied());
            if a.unwrap_or(0) > 0 && b.unwrap_or(0) > 0 {
                hits += 1;
                *cnt_p.get_mut(w).unwrap() -= 1;
                *cnt_t.get_mut(w).unwrap() -= 1;
            }
        }
    }
    Score::new(hits, n, m)
}

/// `RougeScorer(["rouge1","rouge2","rougeL","rougeLsum"]).score(target, prediction)`.
pub fn score(target: &str, prediction: &str) -> Rouge {
    score_with(target, prediction, &tokenize)
}

/// The same scores over another tokenization (e.g. characters or a subword tokenizer for
/// Korean, which the default tokenizer drops).
pub fn score_with(target: &str, prediction: &str, tok: &dyn Fn(&str) -> Vec<String>) -> Rouge {
    let (t, p) = (tok(target), tok(prediction));
    let l = lcs_table(&t, &p)[t.len()][p.len()];
    Rouge {
        rouge1: ngram_score(&t, &p, 1),
        rouge2: ngram_score(&t, &p, 2),
        rouge_l: Score::new(l, p.len(), t.len()),
        rouge_lsum: lsum(target, prediction, tok),
    }
}

/// Mean of each F-measure over pairs (what `evaluate`'s rouge reports, times 100 there).
pub fn mean_f(scores: &[Rouge]) -> [f64; 4] {
    let n = scores.len().max(1) as f64;
    let mut m = [0.0; 4];
    for s in scores {
        m[0] += s.rouge1.fmeasure / n;
        m[1] += s.rouge2.fmeasure / n;
        m[2] += s.rouge_l.fmeasure / n;
        m[3] += s.rouge_lsum.fmeasure / n;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_lowercases_and_splits_on_non_alphanumerics() {
        assert_eq!(
            tokenize("The U.S. GDP rose 3.5%!"),
            ["the", "u", "s", "gdp", "rose", "3", "5"]
        );
        assert!(tokenize("한국어 문장").is_empty());
    }

    #[test]
    fn lcs_of_a_known_pair() {
        let r = score(
            "the cat was found under the bed",
            "the cat was under the bed",
        );
        assert_eq!(r.rouge_l.precision, 1.0);
        assert!((r.rouge_l.recall - 6.0 / 7.0).abs() < 1e-12);
    }
}
