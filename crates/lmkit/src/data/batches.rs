//! Training batches from a tokenized split: per-epoch seeded shuffling (train only), dynamic
//! padding to the longest sequence in each batch, optional length bucketing, labels.

use anyhow::{anyhow, bail, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::Dataset;
use crate::tokenize::ModelInput;

#[derive(Clone, Debug)]
pub struct BatchOptions {
    pub batch_size: usize,
    /// Shuffle each epoch (the seed and the epoch number fix the order).
    pub shuffle: bool,
    pub seed: u64,
    /// Group examples of similar length into batches (within windows of 50 batches), so
    /// little compute goes to padding; batch order is still shuffled.
    pub bucket_by_length: bool,
    /// The label column (None: no labels, e.g. for prediction).
    pub label_column: Option<String>,
    pub pad_token_id: u32,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            batch_size: 64,
            shuffle: false,
            seed: 42,
            bucket_by_length: false,
            label_column: Some("label".into()),
            pad_token_id: 0,
        }
    }
}

/// One batch, ready for a model.
#[derive(Clone, Debug)]
pub struct Batch {
    pub input: ModelInput,
    pub labels: Option<Tensor>,
    /// Row indices in the split, in batch order.
    pub indices: Vec<usize>,
    /// Real (unpadded) tokens in the batch.
    pub tokens: usize,
}

/// The row order of `epoch`: identity without shuffling; otherwise a permutation seeded by
/// (seed, epoch), bucketed by length when asked.
pub fn epoch_order(lengths: &[usize], opts: &BatchOptions, epoch: usize) -> Vec<Vec<usize>> {
    let n = lengths.len();
    let bs = opts.batch_size.max(1);
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        opts.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    if opts.shuffle {
        idx.shuffle(&mut rng);
    }
    if !opts.bucket_by_length {
        return idx.chunks(bs).map(|c| c.to_vec()).collect();
    }
    let mut batches: Vec<Vec<usize>> = vec![];
    for window in idx.chunks(bs * 50) {
        let mut w = window.to_vec();
        w.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(w.chunks(bs).map(|c| c.to_vec()));
    }
    if opts.shuffle {
        batches.shuffle(&mut rng);
    }
    batches
}

/// Real token count of each row (sum of its attention mask, or its id count).
pub fn lengths(ds: &Dataset) -> Result<Vec<usize>> {
    if let Ok(m) = ds.column("attention_mask") {
        let m = m
            .as_int_list()
            .ok_or_else(|| anyhow!("{}: attention_mask is not a list column", ds.source))?;
        return Ok(m
            .iter()
            .map(|r| r.iter().filter(|&&x| x != 0).count())
            .collect());
    }
    let ids = ds
        .column("input_ids")?
        .as_int_list()
        .ok_or_else(|| anyhow!("{}: input_ids is not a list column", ds.source))?;
    Ok(ids.iter().map(|r| r.len()).collect())
}

/// Builds the batches of one epoch. Rows keep their real tokens; each batch is padded (or cut
/// back, if the data was padded at tokenization) to its own longest row.
pub fn batches(
    ds: &Dataset,
    opts: &BatchOptions,
    epoch: usize,
    device: &Device,
) -> Result<Vec<Batch>> {
    let lens = lengths(ds)?;
    epoch_order(&lens, opts, epoch)
        .into_iter()
        .map(|idx| make_batch(ds, &idx, &lens, opts, device))
        .collect()
}

pub fn make_batch(
    ds: &Dataset,
    idx: &[usize],
    lens: &[usize],
    opts: &BatchOptions,
    device: &Device,
) -> Result<Batch> {
    let ids = ds
        .column("input_ids")?
        .as_int_list()
        .ok_or_else(|| anyhow!("{}: input_ids is not a list column", ds.source))?;
    let types = ds
        .column("token_type_ids")
        .ok()
        .and_then(|c| c.as_int_list());
    let width = idx.iter().map(|&i| lens[i]).max().unwrap_or(0).max(1);
    let (b, mut flat_ids, mut flat_mask, mut flat_types) = (idx.len(), vec![], vec![], vec![]);
    for &i in idx {
        let n = lens[i];
        if ids[i].len() < n {
            bail!(
                "{}: row {i} has fewer ids than its attention mask",
                ds.source
            )
        }
        flat_ids.extend_from_slice(&ids[i][..n]);
        flat_ids.extend(std::iter::repeat_n(opts.pad_token_id, width - n));
        flat_mask.extend(std::iter::repeat_n(1u32, n));
        flat_mask.extend(std::iter::repeat_n(0u32, width - n));
        match types {
            Some(t) => {
                flat_types.extend_from_slice(&t[i][..n.min(t[i].len())]);
                flat_types.extend(std::iter::repeat_n(0u32, width - n.min(t[i].len())));
            }
            None => flat_types.extend(std::iter::repeat_n(0u32, width)),
        }
    }
    let labels = match &opts.label_column {
        None => None,
        Some(col) => {
            let l = ds
                .column(col)?
                .as_int()
                .ok_or_else(|| anyhow!("{}: label column {col:?} is not integer ids", ds.source))?;
            let v: Vec<u32> = idx.iter().map(|&i| l[i] as u32).collect();
            Some(Tensor::from_vec(v, b, device)?)
        }
    };
    Ok(Batch {
        input: ModelInput {
            input_ids: Tensor::from_vec(flat_ids, (b, width), device)?,
            attention_mask: Tensor::from_vec(flat_mask, (b, width), device)?,
            token_type_ids: Some(Tensor::from_vec(flat_types, (b, width), device)?),
        },
        labels,
        indices: idx.to_vec(),
        tokens: idx.iter().map(|&i| lens[i]).sum(),
    })
}
