//! `lmkit bench`: times lmkit alone on a fixed shape (warm-up, then the median of several
//! runs), for the side-by-side scripts under bench/ to compare with the Python reference.

use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};
use lmkit::models::{AutoModel, ModelInput};

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Random ids (no padding) of the given shape: every sample costs exactly `seq` tokens.
fn random_input(vocab: usize, batch: usize, seq: usize) -> Result<ModelInput> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let ids: Vec<u32> = (0..batch * seq)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            1000 + (state % (vocab as u64 - 1000)) as u32
        })
        .collect();
    let input_ids = Tensor::from_vec(ids, (batch, seq), &Device::Cpu)?;
    Ok(ModelInput {
        attention_mask: input_ids.ones_like()?,
        token_type_ids: Some(input_ids.zeros_like()?),
        input_ids,
    })
}

/// Median seconds of `iters` runs of `f` after `warmup` runs.
pub fn time_median(
    warmup: usize,
    iters: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times)
}

/// Encoder inference (forward without gradients) on batch x seq tokens, plus mean pooling.
pub fn infer(model: &str, batch: usize, seq: usize, iters: usize) -> Result<serde_json::Value> {
    let dir = lmkit::store::resolve(model)?;
    let m = AutoModel::from_folder(&dir, &Device::Cpu)?;
    let vocab = match &m.config.arch {
        lmkit::models::ArchConfig::Bert(c) => c.vocab_size,
        lmkit::models::ArchConfig::DistilBert(c) => c.vocab_size,
    };
    let x = random_input(vocab, batch, seq)?;
    let times = time_median(2, iters, || {
        let h = m.forward(&x)?;
        let e = lmkit::models::bert::mean_pool(&h, &x.attention_mask)?;
        lmkit::embed::l2_normalize(&e)?;
        Ok(())
    })?;
    let median = times[times.len() / 2];
    Ok(serde_json::json!({
        "impl": "lmkit", "task": "infer", "model": model, "batch": batch, "seq": seq,
        "threads": rayon_threads(), "median_s": median, "samples_per_s": batch as f64 / median,
        "times_s": times, "peak_rss_mib": peak_rss_mib(),
    }))
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
