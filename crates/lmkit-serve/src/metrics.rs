//! Prometheus metrics through the `metrics` crate. Each server owns its recorder (not the
//! process-global one), so two servers in one process, as in the tests, count separately.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const COUNTS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16384.0, 32768.0,
];

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("lmkit_batch_size".into()), COUNTS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("lmkit_batch_tokens".into()), COUNTS)
            })
            .expect("bucket lists are non-empty constants")
            .build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    /// Runs `f` with this server's recorder behind the `metrics` macros.
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        let (route, status) = (route.to_string(), status.to_string());
        self.with(|| {
            metrics::counter!("lmkit_requests_total", "route" => route.clone(), "status" => status)
                .increment(1);
            metrics::histogram!("lmkit_request_duration_seconds", "route" => route).record(seconds);
        });
    }

    pub fn inputs(&self, route: &str, n: usize) {
        let route = route.to_string();
        self.with(|| metrics::counter!("lmkit_inputs_total", "route" => route).increment(n as u64));
    }

    pub fn queue_depth(&self, model: &str, depth: usize) {
        let model = model.to_string();
        self.with(|| metrics::gauge!("lmkit_queue_depth", "model" => model).set(depth as f64));
    }

    /// One batch a worker ran: how long its requests waited, how long it computed.
    pub fn batch(&self, model: &str, requests: usize, tokens: usize, queued: &[f64], compute: f64) {
        let model = model.to_string();
        self.with(|| {
            metrics::histogram!("lmkit_batch_size", "model" => model.clone())
                .record(requests as f64);
            metrics::histogram!("lmkit_batch_tokens", "model" => model.clone())
                .record(tokens as f64);
            for q in queued {
                metrics::histogram!("lmkit_queue_seconds", "model" => model.clone()).record(*q);
            }
            metrics::histogram!("lmkit_compute_seconds", "model" => model).record(compute);
        });
    }

    pub fn generated(&self, model: &str, tokens: usize) {
        let model = model.to_string();
        self.with(|| {
            metrics::counter!("lmkit_generated_tokens_total", "model" => model)
                .increment(tokens as u64)
        });
    }

    pub fn rejected(&self, reason: &'static str) {
        self.with(|| metrics::counter!("lmkit_rejected_total", "reason" => reason).increment(1));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts every response by its route pattern (not the raw path, which a client could vary
/// without bound) and status, and times it.
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let t0 = Instant::now();
    let r = next.run(req).await;
    m.request(&route, r.status().as_u16(), t0.elapsed().as_secs_f64());
    r
}
