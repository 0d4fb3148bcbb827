//! `lmkit serve`: one HTTP server for lmkit's pipelines, compatible with
//! text-embeddings-inference (TEI) and with OpenAI's API, so their clients work unchanged.
//!
//! ```text
//!  request ─► axum (tokio) ─► limits: key, payload, batch size, concurrency ─► route handler
//!                                                                                   │ job
//!                     model worker thread (one per model, bounded queue) ◄─────────┘
//!                     batches waiting jobs, runs the pipeline, answers ─► JSON or SSE
//! ```
//!
//! The async runtime never runs a forward pass: it parses, checks, queues and answers. Each
//! model has a worker thread that owns it (`worker.rs`). Every input counts against
//! `--max-concurrent-requests`; past it a request gets 429 at once rather than waiting in an
//! unbounded queue.

pub mod api;
pub mod error;
pub mod metrics;
mod routes;
pub mod worker;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::metrics::Metrics;
use crate::worker::{ModelHandle, WorkerConfig};

/// The English sentence-embedding model served when no `--model` is given.
pub const DEFAULT_EMBEDDING_MODEL: &str = lmkit::pipelines::DEFAULT_FEATURE_MODEL;

/// `lmkit serve`'s settings (the CLI's flags).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Models to serve; empty: the defaults that are on this machine.
    pub models: Vec<String>,
    /// fp32, bf16 or int8 encoder projections.
    pub precision: lmkit::nn::Precision,
    /// The most tokens one worker batch takes from its queue (TEI's `--max-batch-tokens`).
    pub max_batch_tokens: usize,
    /// Inputs in flight at once, over all requests; past it, 429.
    pub max_concurrent_requests: usize,
    /// Inputs in one request; past it, 413.
    pub max_client_batch_size: usize,
    /// Requests must carry `Authorization: Bearer <key>` (all routes but `/health`).
    pub api_key: Option<String>,
    /// Cut over-long inputs instead of refusing them (422).
    pub auto_truncate: bool,
    /// A request that takes longer is answered 408.
    pub request_timeout: Option<Duration>,
    /// The largest request body in bytes; past it, 413.
    pub payload_limit: usize,
    /// After SIGTERM/SIGINT, how long requests in flight may take before the server exits.
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            models: vec![],
            precision: lmkit::nn::Precision::Fp32,
            max_batch_tokens: 16384,
            max_concurrent_requests: 512,
            max_client_batch_size: 32,
            api_key: None,
            auto_truncate: false,
            request_timeout: None,
            payload_limit: 2_000_000,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// What `lmkit serve` loads: the given models, or the defaults that are on this machine.
/// Returns the models and, for defaults left out, why.
pub fn models_to_serve(cfg: &ServeConfig) -> (Vec<String>, Vec<String>) {
    if !cfg.models.is_empty() {
        return (cfg.models.clone(), vec![]);
    }
    let mut models = vec![DEFAULT_EMBEDDING_MODEL.to_string()];
    let mut skipped = vec![];
    for id in [
        lmkit::pipelines::DEFAULT_SENTIMENT_MODEL,
        lmkit::pipelines::text_generation::DEFAULT_MODEL,
    ] {
        if lmkit::hub::is_installed(id) {
            models.push(id.to_string());
        } else {
            skipped.push(format!(
                "{id}: not in the store (`lmkit fetch {id}` adds it; then restart)"
            ));
        }
    }
    (models, skipped)
}

/// The state every handler sees.
#[derive(Clone)]
pub(crate) struct AppState {
    pub cfg: Arc<ServeConfig>,
    pub models: Arc<Vec<Arc<ModelHandle>>>,
    pub permits: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
}

/// Serves on `listener` until `shutdown` completes, then stops accepting, lets the requests
/// in flight finish (up to `shutdown_timeout`) and returns. A model given explicitly that
/// fails to load stops the server with that error.
pub async fn serve(
    cfg: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (models, skipped) = models_to_serve(&cfg);
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    let metrics = Arc::new(Metrics::new());
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let wcfg = WorkerConfig {
        precision: cfg.precision,
        max_batch_tokens: cfg.max_batch_tokens,
        auto_truncate: cfg.auto_truncate,
        queue: cfg.max_concurrent_requests,
    };
    let mut handles = vec![];
    for id in &models {
        handles.push(worker::spawn(
            id,
            wcfg.clone(),
            metrics.clone(),
            ready_tx.clone(),
        )?);
    }
    drop(ready_tx);
    let state = AppState {
        cfg: Arc::new(cfg.clone()),
        models: Arc::new(handles),
        permits: Arc::new(Semaphore::new(cfg.max_concurrent_requests)),
        metrics,
    };
    let app = routes::router(state.clone());

    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let failed = Arc::new(AtomicBool::new(false));
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            eprintln!("shutting down: no new connections; finishing the requests in flight");
            let _ = stop_tx.send(true);
        });
    }
    {
        let (stop_tx, failed) = (stop_tx.clone(), failed.clone());
        tokio::spawn(async move {
            while let Some((id, outcome)) = ready_rx.recv().await {
                match outcome {
                    Ok(info) => {
                        eprintln!("ready: {id} ({}) at {}", info.kind, info.routes.join(", "))
                    }
                    Err(e) => {
                        eprintln!("error: {id} failed to load: {e}");
                        failed.store(true, Ordering::SeqCst);
                        let _ = stop_tx.send(true);
                    }
                }
            }
        });
    }
    let graceful = {
        let mut r = stop_rx.clone();
        async move {
            let _ = r.wait_for(|v| *v).await;
        }
    };
    let deadline = {
        let mut r = stop_rx.clone();
        let d = cfg.shutdown_timeout;
        async move {
            let _ = r.wait_for(|v| *v).await;
            tokio::time::sleep(d).await;
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful);
    tokio::select! {
        r = server => r?,
        _ = deadline => eprintln!(
            "warning: requests were still open {} s after the shutdown signal; exiting",
            cfg.shutdown_timeout.as_secs()
        ),
    }
    if failed.load(Ordering::SeqCst) {
        bail!("a model failed to load (see above)")
    }
    Ok(())
}

/// SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Binds `host:port`, says where it listens, and serves until SIGTERM/SIGINT: what
/// `lmkit serve` runs.
pub fn run(cfg: ServeConfig, host: &str, port: u16) -> Result<()> {
    // A client that hangs up mid-answer must cost its connection, not the process (the CLI
    // restores SIGPIPE's default for pipes into `head`).
    #[cfg(unix)]
    // SAFETY: changes one signal's disposition before the runtime's threads start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lmkit-http")
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::bind((host, port))
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {host}:{port}: {e}"))?;
        let addr = listener.local_addr()?;
        eprintln!("listening on http://{addr}");
        serve(cfg, listener, shutdown_signal()).await
    })
}
