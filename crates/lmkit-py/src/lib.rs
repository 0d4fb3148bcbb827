//! `lmkit._lmkit`: the native half of the Python package. Each class here holds one of the
//! library's Rust objects and runs its work with the GIL released; the Python half
//! (`python/lmkit`) gives them transformers' and datasets' names and call shapes.
//!
//! Layout, as the library's: tokenizer → datasets → models → training → pipelines, with
//! metrics and plots beside them.

mod datasets;
mod errors;
mod metrics;
mod models;
mod pipelines;
mod plots;
mod tokenizer;
mod training;

use pyo3::prelude::*;

#[pymodule]
fn _lmkit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Registers lmkit's own models (lmkit/sentiment-sst2, ...) with the store, as the CLI does,
    // so that `pipeline("sentiment-analysis")` can build its default on first use.
    lmkit::finetune::recipes::register();
    // Charts with Korean text draw in NanumGothic, fetched into the store on first use.
    lmkit::hub::fonts::register();
    // GGUF LLMs load dequantized to f32, as the CLI loads them (see prefer_f32_weights); this
    // runs at import, before lmkit starts any thread.
    lmkit::models::llm::prefer_f32_weights();
    // The library's warnings (truncated inputs, a classifier that cannot read its text) go to
    // stderr as the CLI prints them, which Jupyter shows under the cell; LMKIT_LOG filters.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LMKIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .try_init();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TASKS", lmkit::pipelines::TASKS.to_vec())?;
    m.add_function(wrap_pyfunction!(fetch, m)?)?;
    m.add_class::<tokenizer::Tokenizer>()?;
    m.add_class::<datasets::Dataset>()?;
    m.add_function(wrap_pyfunction!(datasets::load_dataset, m)?)?;
    m.add_class::<models::Encoder>()?;
    m.add_class::<models::SequenceClassifier>()?;
    m.add_class::<models::SentenceEncoder>()?;
    m.add_function(wrap_pyfunction!(training::train, m)?)?;
    m.add_function(wrap_pyfunction!(training::predict, m)?)?;
    m.add_class::<pipelines::Pipeline>()?;
    m.add_function(wrap_pyfunction!(metrics::classification_report, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::confusion_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(plots::confusion_matrix_plot, m)?)?;
    m.add_function(wrap_pyfunction!(plots::bar_plot, m)?)?;
    m.add_function(wrap_pyfunction!(plots::eda_plots, m)?)?;
    m.add_function(wrap_pyfunction!(plots::curves_plot, m)?)?;
    Ok(())
}

/// `lmkit fetch ID`: puts a catalogued model into the store (downloads a known one, builds one
/// lmkit trains, e.g. lmkit/sentiment-sst2) and returns its folder; a no-op when present.
/// `train_limit` builds a trained one on a subset (quicker and weaker: for tests).
#[pyfunction]
#[pyo3(signature = (id, force=false, train_limit=None))]
fn fetch(
    py: Python<'_>,
    id: String,
    force: bool,
    train_limit: Option<usize>,
) -> PyResult<std::path::PathBuf> {
    use errors::OrPy;
    py.detach(|| lmkit::hub::fetch(&id, force, train_limit))
        .or_other()
}
