//! `Trainer.train()` and Keras' `model.fit()` run `lmkit::train::fit_with` on a worker thread
//! while the calling thread, holding the GIL only between waits, hands progress events to a
//! Python callback (tqdm) and watches for Ctrl-C. On Ctrl-C the trainer stops after the
//! current step with a checkpoint, and the KeyboardInterrupt reaches the caller.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Duration;

use lmkit::train::{Event, Hooks, TrainConfig};
use numpy::PyArray2;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::datasets::Dataset;
use crate::errors::OrPy;
use crate::models::SequenceClassifier;

fn event_to_py<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match e {
        Event::Step {
            epoch,
            epochs,
            batch,
            batches,
            loss,
        } => {
            d.set_item("event", "step")?;
            d.set_item("epoch", epoch)?;
            d.set_item("epochs", epochs)?;
            d.set_item("batch", batch)?;
            d.set_item("batches", batches)?;
            d.set_item("loss", loss)?;
        }
        Event::Epoch(log) => {
            d.set_item("event", "epoch")?;
            let v = serde_json::to_value(log).map_err(|e| PyValueError::new_err(e.to_string()))?;
            for (k, v) in v.as_object().into_iter().flatten() {
                match v {
                    serde_json::Value::Number(n) if n.is_u64() => d.set_item(k, n.as_u64())?,
                    serde_json::Value::Number(n) => d.set_item(k, n.as_f64())?,
                    _ => d.set_item(k, py.None())?,
                }
            }
        }
    }
    Ok(d)
}

/// Trains `model` on a tokenized split with a "label" column. `config` is a TrainConfig as
/// JSON (the Python half maps TrainingArguments onto it). Returns the run's outcome as JSON:
/// {"reason", "global_step", "history"}.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (model, train, val, config, output_dir, resume=false, on_event=None))]
pub fn train(
    py: Python<'_>,
    model: &SequenceClassifier,
    train: &Dataset,
    val: Option<&Dataset>,
    config: &str,
    output_dir: PathBuf,
    resume: bool,
    on_event: Option<Py<PyAny>>,
) -> PyResult<String> {
    let cfg: TrainConfig = serde_json::from_str(config)
        .map_err(|e| PyValueError::new_err(format!("training settings: {e}")))?;
    for (name, d) in [("train", Some(train)), ("eval", val)] {
        if let Some(d) = d {
            let cols = d.inner.column_names();
            for need in ["input_ids", "label"] {
                if !cols.contains(&need) {
                    return Err(PyValueError::new_err(format!(
                        "the {name} dataset has no {need:?} column (it has: {}): tokenize it \
                         with dataset.map(tokenize, batched=True) and name the labels \"label\"",
                        cols.join(", ")
                    )));
                }
            }
        }
    }
    let pad = model.pad_token_id;
    let stop = AtomicBool::new(false);
    let (tx, mut rx) = mpsc::channel::<Event>();
    let mut interrupt: Option<PyErr> = None;
    let guard = model.lock();
    let m: &lmkit::models::AutoModelForSequenceClassification = &guard;
    let outcome = std::thread::scope(|s| -> PyResult<_> {
        let worker = s.spawn(|| {
            let tx = tx;
            let send = move |e: Event| {
                let _ = tx.send(e);
            };
            lmkit::train::fit_with(
                m,
                &train.inner,
                val.map(|v| &v.inner),
                &cfg,
                &output_dir,
                resume,
                pad,
                &Hooks {
                    stop: Some(&stop),
                    on_event: Some(&send),
                },
            )
        });
        loop {
            let rx = &mut rx;
            let (events, done) = py.detach(move || {
                let mut ev = vec![];
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(e) => {
                        ev.push(e);
                        ev.extend(rx.try_iter());
                        (ev, false)
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => (ev, false),
                    // The worker dropped its sender: it has returned.
                    Err(mpsc::RecvTimeoutError::Disconnected) => (ev, true),
                }
            });
            if let Some(cb) = &on_event {
                for e in &events {
                    if let Err(err) = cb.call1(py, (event_to_py(py, e)?,)) {
                        // A failing callback stops training like Ctrl-C would.
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                        interrupt.get_or_insert(err);
                    }
                }
            }
            if interrupt.is_none() {
                if let Err(e) = py.check_signals() {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    interrupt = Some(e);
                }
            }
            if done {
                break;
            }
        }
        Ok(worker.join())
    })?;
    drop(guard);
    let outcome = match outcome {
        Ok(r) => r.or_other()?,
        Err(_) => {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the training thread panicked; the last checkpoint in output_dir is intact",
            ))
        }
    };
    if let Some(e) = interrupt {
        return Err(e);
    }
    Ok(serde_json::json!({
        "reason": outcome.reason,
        "global_step": outcome.state.global_step,
        "history": outcome.state.history,
    })
    .to_string())
}

/// Logits (rows, num_labels) for a tokenized split, in its order (`Trainer.predict`,
/// Keras' `model.predict`), and the mean loss when it has a "label" column.
#[pyfunction]
#[pyo3(signature = (model, data, batch_size=128))]
pub fn predict<'py>(
    py: Python<'py>,
    model: &SequenceClassifier,
    data: &Dataset,
    batch_size: usize,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Option<f64>)> {
    if batch_size == 0 {
        return Err(PyValueError::new_err("batch_size must be at least 1"));
    }
    let pad = model.pad_token_id;
    let has_label = data.inner.column_names().contains(&"label");
    let p = py
        .detach(|| {
            lmkit::train::predict(
                &model.lock(),
                &data.inner,
                batch_size,
                has_label.then_some("label"),
                pad,
            )
        })
        .or_input()?;
    let n_labels = model.lock().labels.len();
    if p.logits.is_empty() {
        return Ok((PyArray2::zeros(py, [0, n_labels], false), p.loss));
    }
    Ok((PyArray2::from_vec2(py, &p.logits)?, p.loss))
}
