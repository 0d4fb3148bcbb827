//! One module per `lmkit` command: its arguments (clap) and a `run` that calls the library
//! and prints.

pub mod bench;
pub mod eda;
pub mod embed;
pub mod evaluate;
pub mod fetch;
pub mod finetune;
pub mod pipeline;
pub mod predict;
pub mod serve;
pub mod tokenize;

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Result};

/// `--precision`: the arithmetic of the encoder projections at inference (`--int8` is the third).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    #[default]
    Fp32,
    /// bf16 operands, f32 sums: AMX or AVX512-BF16 (refused on a CPU without either).
    Bf16,
}

/// The load options of an inference command's `--int8` and `--precision`.
pub fn load_options(int8: bool, precision: PrecisionArg) -> Result<lmkit::nn::LoadOptions> {
    use lmkit::nn::{LoadOptions, Precision};
    Ok(LoadOptions::precision(match (int8, precision) {
        (true, PrecisionArg::Bf16) => {
            bail!("--int8 and --precision bf16 are two precisions: choose one")
        }
        (true, PrecisionArg::Fp32) => Precision::Int8,
        (false, PrecisionArg::Bf16) => Precision::Bf16,
        (false, PrecisionArg::Fp32) => Precision::Fp32,
    }))
}

/// Texts from the arguments, or from stdin (one per line) when none are given.
/// An empty text is refused here, the same way by every command that reads texts.
pub fn texts_or_stdin(texts: Vec<String>) -> Result<Vec<String>> {
    let texts = read_texts(texts)?;
    lmkit::pipelines::check_texts(&texts)?;
    Ok(texts)
}

fn read_texts(texts: Vec<String>) -> Result<Vec<String>> {
    if !texts.is_empty() {
        return Ok(texts);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("no texts given: pass them as arguments or pipe them in, one per line")
    }
    let mut out = vec![];
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("stdin line {}: {e}", i + 1))?;
        out.push(line);
    }
    if out.is_empty() {
        bail!("no texts on stdin")
    }
    Ok(out)
}

// Value parsers for numeric flags: clap refuses an out-of-range number before any work starts,
// and its message names the flag and the value.

fn number<T: std::str::FromStr>(s: &str) -> std::result::Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.trim().parse::<T>().map_err(|e| format!("{e}"))
}

/// A count of 1 or more.
pub fn at_least_1(s: &str) -> std::result::Result<usize, String> {
    match number::<usize>(s)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// A token length: at least 2, room for the [CLS] and [SEP] a BERT input always has.
pub fn token_length(s: &str) -> std::result::Result<usize, String> {
    match number::<usize>(s)? {
        n if n < 2 => Err("must be at least 2 (the special tokens alone take 2)".into()),
        n => Ok(n),
    }
}

/// A finite number above 0.
pub fn positive(s: &str) -> std::result::Result<f64, String> {
    match number::<f64>(s)? {
        v if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("must be a finite number above 0".into()),
    }
}

/// A finite number of 0 or more.
pub fn non_negative(s: &str) -> std::result::Result<f64, String> {
    match number::<f64>(s)? {
        v if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("must be a finite number of 0 or more".into()),
    }
}

/// A fraction in [0, 1).
pub fn fraction(s: &str) -> std::result::Result<f64, String> {
    match number::<f64>(s)? {
        v if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err("must be at least 0 and below 1".into()),
    }
}

/// A fraction in (0, 1).
pub fn open_fraction(s: &str) -> std::result::Result<f64, String> {
    match number::<f64>(s)? {
        v if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err("must be above 0 and below 1".into()),
    }
}

/// A probability mass in (0, 1].
pub fn probability(s: &str) -> std::result::Result<f64, String> {
    match number::<f64>(s)? {
        v if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err("must be above 0 and at most 1".into()),
    }
}
