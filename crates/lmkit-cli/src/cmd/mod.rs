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
pub mod tokenize;

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Result};

/// Texts from the arguments, or from stdin (one per line) when none are given.
pub fn texts_or_stdin(texts: Vec<String>) -> Result<Vec<String>> {
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
