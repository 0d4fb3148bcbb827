//! Every parameter of a classifier gets a gradient (stock candle's fused layer norm and
//! softmax silently cut the graph), and the analytic gradient agrees with finite differences.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use lmkit::models::{bert, distilbert, AutoModelForSequenceClassification, Config, ModelInput};
use lmkit::nn::{cross_entropy, Weights};

fn bert_config(hidden: usize, layers: usize) -> Config {
    let json = serde_json::json!({
        "model_type": "bert", "vocab_size": 50, "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": 2, "intermediate_size": hidden * 2,
        "max_position_embeddings": 16, "type_vocab_size": 2, "hidden_act": "gelu",
    });
    Config::from_json(&json.to_string(), "test-bert/config.json".into()).unwrap()
}

fn distilbert_config(dim: usize, layers: usize) -> Config {
    let json = serde_json::json!({
        "model_type": "distilbert", "vocab_size": 50, "dim": dim, "n_layers": layers,
        "n_heads": 2, "hidden_dim": dim * 2, "max_position_embeddings": 16,
    });
    Config::from_json(&json.to_string(), "test-distilbert/config.json".into()).unwrap()
}

/// Random weights of cfg's architecture; `head` puts them under the classifier's body prefix.
fn random_tensors(cfg: &Config, head: bool, seed: u64) -> HashMap<String, Tensor> {
    match &cfg.arch {
        lmkit::models::ArchConfig::Bert(c) => {
            bert::random_tensors(c, if head { "bert." } else { "" }, seed).unwrap()
        }
        lmkit::models::ArchConfig::DistilBert(c) => {
            distilbert::random_tensors(c, if head { "distilbert." } else { "" }, seed).unwrap()
        }
    }
}

fn random_classifier(cfg: &Config, dtype: DType) -> AutoModelForSequenceClassification {
    let w = Weights::from_tensors(random_tensors(cfg, true, 1), "random", &Device::Cpu)
        .trainable(3)
        .dtype(dtype);
    let labels = vec!["a".into(), "b".into(), "c".into()];
    AutoModelForSequenceClassification::from_weights(w, cfg.clone(), labels).unwrap()
}

fn batch() -> (ModelInput, Tensor) {
    let dev = Device::Cpu;
    let ids = Tensor::new(&[[2u32, 7, 9, 4, 3, 0], [2, 11, 5, 3, 0, 0]], &dev).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]], &dev).unwrap();
    let tt = Tensor::new(&[[0u32, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]], &dev).unwrap();
    let labels = Tensor::new(&[2u32, 0], &dev).unwrap();
    (
        ModelInput {
            input_ids: ids,
            attention_mask: mask,
            token_type_ids: Some(tt),
        },
        labels,
    )
}

fn assert_all_params_get_gradients(cfg: Config) {
    let model = random_classifier(&cfg, DType::F32);
    let (x, y) = batch();
    let loss = cross_entropy(&model.forward(&x, true).unwrap(), &y).unwrap();
    let grads = loss.backward().unwrap();
    let params = model.params();
    assert!(params.len() > 20, "only {} params", params.len());
    let mut missing = vec![];
    for (name, var) in &params {
        match grads.get(var) {
            None => missing.push(format!("{name}: no gradient")),
            Some(g) => {
                let n = g
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                // Position rows beyond the sequence and unused token ids legitimately get 0,
                // but the table as a whole must not.
                if n == 0.0 || !n.is_finite() {
                    missing.push(format!("{name}: |grad| = {n}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "parameters without gradient:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_bert_parameter_gets_a_gradient() {
    assert_all_params_get_gradients(bert_config(8, 2));
}

#[test]
fn every_distilbert_parameter_gets_a_gradient() {
    assert_all_params_get_gradients(distilbert_config(8, 2));
}

/// Central differences in f64: error O(h^2) ~ 1e-8 relative at h = 1e-4, far below the 1e-5
/// tolerance; f64 rounding (1e-16 / h ~ 1e-12) is negligible.
fn finite_difference_check(cfg: Config) {
    let model = random_classifier(&cfg, DType::F64);
    let (x, y) = batch();
    let loss_of = |m: &AutoModelForSequenceClassification| -> f64 {
        cross_entropy(&m.forward(&x, false).unwrap(), &y)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let loss = cross_entropy(&model.forward(&x, false).unwrap(), &y).unwrap();
    let grads = loss.backward().unwrap();
    let h = 1e-4;
    let mut checked = 0;
    for (name, var) in model.params() {
        let g = grads
            .get(&var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let orig = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        // The entry with the largest gradient, and the first entry.
        let imax = (0..g.len())
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap();
        for i in [0, imax] {
            let mut v = orig.clone();
            v[i] = orig[i] + h;
            var.set(&Tensor::from_vec(v.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let lp = loss_of(&model);
            v[i] = orig[i] - h;
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let lm = loss_of(&model);
            var.set(&Tensor::from_vec(orig.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let fd = (lp - lm) / (2.0 * h);
            let err = (fd - g[i]).abs() / (1e-6 + fd.abs().max(g[i].abs()));
            assert!(
                err < 1e-5 || (fd - g[i]).abs() < 1e-9,
                "{name}[{i}]: analytic {} vs finite difference {fd}",
                g[i]
            );
            checked += 1;
        }
    }
    assert!(checked > 40);
}

#[test]
fn bert_gradient_matches_finite_differences() {
    finite_difference_check(bert_config(8, 1));
}

#[test]
fn distilbert_gradient_matches_finite_differences() {
    finite_difference_check(distilbert_config(8, 1));
}

/// The classification heads run the last layer for the first token only; that must be the
/// same function as the whole encoder's first row, values and gradients, for every weight.
/// In f64 both paths differ only by summation order inside the matmuls of that last layer
/// (one row of a gemm vs the same row within a larger one), so 1e-12 is a rounding bound,
/// not a fit.
fn first_token_path_matches_full_encoder(cfg: Config) {
    let (x, _) = batch();
    let w = Weights::from_tensors(random_tensors(&cfg, false, 5), "random", &Device::Cpu)
        .trainable(3)
        .dtype(DType::F64);
    let (full, first) = match &cfg.arch {
        lmkit::models::ArchConfig::Bert(c) => {
            let m = bert::BertModel::load(&w, c, false).unwrap();
            (
                m.forward(&x, false).unwrap(),
                m.forward_first_token(&x, false).unwrap(),
            )
        }
        lmkit::models::ArchConfig::DistilBert(c) => {
            let m = distilbert::DistilBertModel::load(&w, c).unwrap();
            (
                m.forward(&x, false).unwrap(),
                m.forward_first_token(&x, false).unwrap(),
            )
        }
    };
    let full = full.narrow(1, 0, 1).unwrap();
    assert_eq!(first.dims(), full.dims());
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    assert!(
        diff(&first, &full) < 1e-12,
        "values differ: {}",
        diff(&first, &full)
    );
    let up = Tensor::randn(0f64, 1.0, full.shape(), &Device::Cpu).unwrap();
    let g_full = (&full * &up)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g_first = (&first * &up)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let params = w.params();
    assert!(params.len() > 10);
    for (name, var) in &params {
        let (a, b) = (g_full.get(var), g_first.get(var));
        match (a, b) {
            (Some(a), Some(b)) => assert!(diff(a, b) < 1e-12, "{name}: gradients differ"),
            (None, None) => {}
            _ => panic!("{name}: gradient on one path only"),
        }
    }
}

#[test]
fn bert_first_token_path_matches_full_encoder() {
    first_token_path_matches_full_encoder(bert_config(8, 2));
}

#[test]
fn distilbert_first_token_path_matches_full_encoder() {
    first_token_path_matches_full_encoder(distilbert_config(8, 2));
}

/// The written-out backward pass (`loss_and_grads`) gives autograd's loss and gradients, with
/// dropout on and the same masks (the dropout generator is rewound between the two). In f64
/// both run the same kernels on the same inputs; they differ only in the order gradients are
/// summed where paths meet (residuals, q/k/v) and in GELU's derivative being written as its
/// formula rather than candle's, each a few roundings of 1e-16 relative, so 1e-12 is a
/// rounding bound.
fn written_out_backward_matches_autograd(cfg: Config) {
    let model = random_classifier(&cfg, DType::F64);
    let (x, y) = batch();
    let params = model.params();
    let rng = model.weights().dropout_rng();
    let start = rng.state();
    let (loss_a, grads_a) = model.loss_and_grads_autograd(&x, &y, 0.5, &params).unwrap();
    let after_a = rng.state();
    rng.set_state(start.0, start.1);
    let (loss_w, grads_w) = model.loss_and_grads(&x, &y, 0.5, &params).unwrap();
    // Both drew the same masks; dropout was on (training mode's loss is not eval mode's).
    assert_eq!(rng.state(), after_a);
    let eval = cross_entropy(&model.forward(&x, false).unwrap(), &y)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let (la, lw) = (
        loss_a.to_scalar::<f64>().unwrap(),
        loss_w.to_scalar::<f64>().unwrap(),
    );
    assert!(
        (la - eval).abs() > 1e-6,
        "dropout was not on: {la} vs {eval}"
    );
    assert!((la - lw).abs() < 1e-12, "loss {la} vs {lw}");
    assert_eq!(grads_a.len(), params.len());
    for ((name, _), (a, w)) in params.iter().zip(grads_a.iter().zip(&grads_w)) {
        let (a, w) = (
            a.as_ref()
                .unwrap_or_else(|| panic!("{name}: no autograd gradient")),
            w.as_ref()
                .unwrap_or_else(|| panic!("{name}: no written-out gradient")),
        );
        assert_eq!(a.dims(), w.dims(), "{name}");
        let max = |t: &Tensor| {
            t.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let d = max(&(a - w).unwrap());
        assert!(
            d <= 1e-12 * (1.0 + max(a)),
            "{name}: gradients differ by {d} (|grad| up to {})",
            max(a)
        );
    }
}

#[test]
fn bert_written_out_backward_matches_autograd() {
    written_out_backward_matches_autograd(bert_config(8, 2));
}

#[test]
fn distilbert_written_out_backward_matches_autograd() {
    written_out_backward_matches_autograd(distilbert_config(8, 2));
}
