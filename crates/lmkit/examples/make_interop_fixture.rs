//! Writes the fixtures that prove a model saved by lmkit loads in Python `transformers` with
//! the same logits: the tiny BERT and DistilBERT classifiers from tests/fixtures, trained a few
//! AdamW steps by lmkit (so every tensor differs from what Python saved), saved with
//! `save_pretrained` into tests/fixtures/tiny-*-lmkit/. Then run
//! `$(scripts/ref-venv.sh) tests/fixtures/check_lmkit_saved.py` to record Python's logits.
//!
//!     cargo run --example make_interop_fixture

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use lmkit::models::LoadOptions;
use lmkit::models::{AutoModelForSequenceClassification, ModelInput};
use lmkit::nn::cross_entropy;
use lmkit::nn::optim::{grads_of, AdamW, AdamWConfig};

fn main() -> anyhow::Result<()> {
    let fx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let dev = Device::Cpu;
    let ids = Tensor::new(
        &[
            [2u32, 17, 40, 9, 3, 0],
            [2, 55, 71, 12, 30, 3],
            [2, 8, 3, 0, 0, 0],
        ],
        &dev,
    )?;
    let mask = Tensor::new(
        &[
            [1u32, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1],
            [1, 1, 1, 0, 0, 0],
        ],
        &dev,
    )?;
    let x = ModelInput {
        input_ids: ids,
        attention_mask: mask,
        token_type_ids: None,
    };
    let y = Tensor::new(&[0u32, 2, 1], &dev)?;
    for name in ["tiny-bert-cls", "tiny-distilbert-cls"] {
        let m = AutoModelForSequenceClassification::load(
            &fx.join(name),
            None,
            &LoadOptions::training(7),
        )?;
        let params = m.params();
        let mut opt = AdamW::new(
            params.clone(),
            AdamWConfig {
                lr: 1e-2,
                ..Default::default()
            },
        )?;
        for _ in 0..3 {
            let loss = cross_entropy(&m.forward(&x, true)?, &y)?;
            opt.step(&grads_of(&loss.backward()?, &params), 1e-2)?;
        }
        let out = fx.join(name.replace("-cls", "-lmkit"));
        m.save_pretrained(&out)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
