//! The routes: TEI's, OpenAI's and lmkit's own. Each handler checks its request, takes one
//! permit per input (429 when none is left), picks the model, queues the work and answers.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use lmkit::generation::sampling::GenerationConfig;
use lmkit::pipelines::ZeroShotOptions;

use crate::api::*;
use crate::error::{ApiError, ApiJson};
use crate::worker::{Cap, ModelHandle, ModelState, Prompt, Reply, Work};
use crate::AppState;

pub(crate) fn router(state: AppState) -> Router {
    let key: Option<Arc<str>> = state.cfg.api_key.as_deref().map(Arc::from);
    let mut r = Router::new()
        .route("/embed", post(embed))
        .route("/embed_all", post(embed_all))
        .route("/similarity", post(similarity))
        .route("/predict", post(predict))
        .route("/tokenize", post(tokenize))
        .route("/decode", post(decode))
        .route("/zero-shot", post(zero_shot))
        .route("/translate", post(translate))
        .route("/summarize", post(summarize))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(list_models))
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/metrics", get(prometheus))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(move |req, next| {
            crate::error::require_key(key.clone(), req, next)
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.cfg.payload_limit));
    if let Some(t) = state.cfg.request_timeout {
        r = r.layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            t,
        ));
    }
    r.layer(axum::middleware::from_fn(crate::error::json_errors))
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<axum::body::Body>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
            },
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

impl AppState {
    /// Checks a request's inputs and takes a permit for each: 413 over
    /// `--max-client-batch-size`, 429 when the server has no permits left.
    fn admit(&self, route: &str, texts: &[String]) -> Result<OwnedSemaphorePermit, ApiError> {
        if texts.is_empty() {
            return Err(ApiError::validation(
                "`inputs` is empty: give at least one text",
            ));
        }
        if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(ApiError::validation(format!(
                "input {i} is empty: every input needs some text"
            )));
        }
        self.permit(route, texts.len())
    }

    fn permit(&self, route: &str, n: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        if n > self.cfg.max_client_batch_size {
            self.metrics.rejected("batch_size");
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{n} inputs in one request; this server takes at most {} \
                     (--max-client-batch-size)",
                    self.cfg.max_client_batch_size
                ),
            ));
        }
        self.metrics.inputs(route, n);
        self.permits
            .clone()
            .try_acquire_many_owned(n as u32)
            .map_err(|_| {
                self.metrics.rejected("concurrency");
                ApiError::overloaded(format!(
                    "the server is at its limit of {} concurrent inputs \
                     (--max-concurrent-requests); retry later",
                    self.cfg.max_concurrent_requests
                ))
            })
    }

    /// The model named by the request, or the first loaded one that can do `cap`.
    fn pick(
        &self,
        model: Option<&str>,
        cap: Cap,
        route: &str,
    ) -> Result<Arc<ModelHandle>, ApiError> {
        let names = || {
            self.models
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(name) = model {
            let m = self
                .models
                .iter()
                .find(|m| matches_name(&m.id, name))
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "unknown model {name:?}; this server has: {}",
                        names()
                    ))
                })?;
            return match m.state() {
                ModelState::Ready(info) if info.caps.contains(&cap) => Ok(m.clone()),
                ModelState::Ready(info) => Err(ApiError::validation(format!(
                    "{} is a {} model and does not serve {route} (it serves {})",
                    m.id,
                    info.kind,
                    info.routes.join(", ")
                ))),
                ModelState::Loading => {
                    Err(ApiError::unavailable(format!("{} is still loading", m.id)))
                }
                ModelState::Failed(e) => Err(ApiError::unavailable(format!(
                    "{} failed to load: {e}",
                    m.id
                ))),
            };
        }
        let mut loading = false;
        for m in self.models.iter() {
            match m.state() {
                ModelState::Ready(info) if info.caps.contains(&cap) => return Ok(m.clone()),
                ModelState::Loading => loading = true,
                _ => {}
            }
        }
        if loading {
            return Err(ApiError::unavailable(
                "the models are still loading; retry shortly",
            ));
        }
        Err(ApiError::validation(format!(
            "no model on this server serves {route} (it has: {})",
            names()
        )))
    }
}

/// A request's `model` matches the id it was loaded by, or that id's last path part.
fn matches_name(id: &str, name: &str) -> bool {
    id == name
        || lmkit::hub::canonical_id(id) == lmkit::hub::canonical_id(name)
        || id.rsplit('/').next() == Some(name)
}

fn unexpected() -> ApiError {
    ApiError::internal("the worker answered with the wrong kind of result")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completion_id(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{nanos:x}{:04x}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[utoipa::path(post, path = "/embed", request_body = EmbedRequest,
    responses((status = 200, body = Vec<Vec<f32>>), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn embed(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<EmbedRequest>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    let texts = req.inputs.into_vec();
    let _permit = s.admit("/embed", &texts)?;
    let m = s.pick(req.model.as_deref(), Cap::Embed, "/embed")?;
    let work = Work::Embed {
        texts,
        normalize: req.normalize,
        truncate: req.truncate.unwrap_or(false),
        prompt_name: req.prompt_name,
        pooled: true,
    };
    match m.call(work).await? {
        Reply::Vectors(v, _) => Ok(Json(v)),
        _ => Err(unexpected()),
    }
}

#[utoipa::path(post, path = "/embed_all", request_body = EmbedAllRequest,
    responses((status = 200, body = Vec<Vec<Vec<f32>>>), (status = 422, body = ErrorBody)))]
async fn embed_all(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<EmbedAllRequest>,
) -> Result<Json<Vec<Vec<Vec<f32>>>>, ApiError> {
    let texts = req.inputs.into_vec();
    let _permit = s.admit("/embed_all", &texts)?;
    let m = s.pick(req.model.as_deref(), Cap::Embed, "/embed_all")?;
    let work = Work::Embed {
        texts,
        normalize: false,
        truncate: req.truncate.unwrap_or(false),
        prompt_name: req.prompt_name,
        pooled: false,
    };
    match m.call(work).await? {
        Reply::TokenVectors(v) => Ok(Json(v)),
        _ => Err(unexpected()),
    }
}

#[utoipa::path(post, path = "/similarity", request_body = SimilarityRequest,
    responses((status = 200, body = Vec<f32>), (status = 422, body = ErrorBody)))]
async fn similarity(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<SimilarityRequest>,
) -> Result<Json<Vec<f32>>, ApiError> {
    if req.inputs.sentences.is_empty() {
        return Err(ApiError::validation("`inputs.sentences` is empty"));
    }
    let mut texts = vec![req.inputs.source_sentence];
    texts.extend(req.inputs.sentences);
    let _permit = s.admit("/similarity", &texts)?;
    let m = s.pick(req.model.as_deref(), Cap::Embed, "/similarity")?;
    let work = Work::Embed {
        texts,
        normalize: true,
        truncate: req.truncate.unwrap_or(false),
        prompt_name: req.prompt_name,
        pooled: true,
    };
    match m.call(work).await? {
        Reply::Vectors(v, _) => Ok(Json(
            v[1..]
                .iter()
                .map(|x| lmkit::embed::cosine_similarity(&v[0], x))
                .collect(),
        )),
        _ => Err(unexpected()),
    }
}

#[utoipa::path(post, path = "/predict", request_body = PredictRequest,
    responses((status = 200, description = "one text: [{label, score}]; several: [[{label, score}]]", body = Vec<Vec<Prediction>>),
              (status = 422, body = ErrorBody)))]
async fn predict(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<PredictRequest>,
) -> Result<Response, ApiError> {
    let one = req.inputs.is_one();
    let texts = req.inputs.into_vec();
    let _permit = s.admit("/predict", &texts)?;
    let m = s.pick(req.model.as_deref(), Cap::Predict, "/predict")?;
    let work = Work::Predict {
        texts,
        raw_scores: req.raw_scores,
        truncate: req.truncate.unwrap_or(false),
    };
    let Reply::Predictions(p) = m.call(work).await? else {
        return Err(unexpected());
    };
    let p: Vec<Vec<Prediction>> = p
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|l| Prediction {
                    score: l.score,
                    label: l.label,
                })
                .collect()
        })
        .collect();
    Ok(if one {
        Json(p.into_iter().next().unwrap_or_default()).into_response()
    } else {
        Json(p).into_response()
    })
}

#[utoipa::path(post, path = "/tokenize", request_body = TokenizeRequest,
    responses((status = 200, body = Vec<Vec<SimpleToken>>), (status = 422, body = ErrorBody)))]
async fn tokenize(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<TokenizeRequest>,
) -> Result<Json<Vec<Vec<SimpleToken>>>, ApiError> {
    let texts = req.inputs.into_vec();
    let _permit = s.admit("/tokenize", &texts)?;
    let m = s.pick(req.model.as_deref(), Cap::Tokenize, "/tokenize")?;
    let work = Work::Tokenize {
        texts,
        add_special_tokens: req.add_special_tokens,
        prompt_name: req.prompt_name,
    };
    match m.call(work).await? {
        Reply::Tokens(t) => Ok(Json(t)),
        _ => Err(unexpected()),
    }
}

#[utoipa::path(post, path = "/decode", request_body = DecodeRequest,
    responses((status = 200, body = Vec<String>), (status = 422, body = ErrorBody)))]
async fn decode(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<DecodeRequest>,
) -> Result<Json<Vec<String>>, ApiError> {
    let ids = match req.ids {
        Ids::One(v) => vec![v],
        Ids::Many(v) => v,
    };
    if ids.is_empty() {
        return Err(ApiError::validation("`ids` is empty"));
    }
    let _permit = s.permit("/decode", ids.len())?;
    let m = s.pick(req.model.as_deref(), Cap::Decode, "/decode")?;
    let work = Work::Decode {
        ids,
        skip_special_tokens: req.skip_special_tokens,
    };
    match m.call(work).await? {
        Reply::Texts(t) => Ok(Json(t)),
        _ => Err(unexpected()),
    }
}

#[utoipa::path(post, path = "/zero-shot", request_body = ZeroShotRequest,
    responses((status = 200, description = "one text: an object; several: a list", body = Vec<ZeroShotResult>),
              (status = 422, body = ErrorBody)))]
async fn zero_shot(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ZeroShotRequest>,
) -> Result<Response, ApiError> {
    let one = req.inputs.is_one();
    let texts = req.inputs.into_vec();
    if req.candidate_labels.is_empty() {
        return Err(ApiError::validation(
            "`candidate_labels` is empty: give at least one label",
        ));
    }
    if let Some(i) = req
        .candidate_labels
        .iter()
        .position(|l| l.trim().is_empty())
    {
        return Err(ApiError::validation(format!(
            "candidate_labels[{i}] is empty"
        )));
    }
    let mut opts = ZeroShotOptions::new(req.candidate_labels);
    opts.multi_label = req.multi_label;
    if let Some(t) = req.hypothesis_template {
        if !t.contains("{}") {
            return Err(ApiError::validation(format!(
                "hypothesis_template {t:?} has no {{}} for the label"
            )));
        }
        opts.hypothesis_template = t;
    }
    let _permit = s.admit("/zero-shot", &texts)?;
    let m = s.pick(req.model.as_deref(), Cap::ZeroShot, "/zero-shot")?;
    let Reply::ZeroShot(out) = m.call(Work::ZeroShot { texts, opts }).await? else {
        return Err(unexpected());
    };
    let out: Vec<ZeroShotResult> = out
        .into_iter()
        .map(|o| ZeroShotResult {
            sequence: o.sequence,
            labels: o.labels,
            scores: o.scores,
        })
        .collect();
    Ok(if one {
        Json(out.into_iter().next()).into_response()
    } else {
        Json(out).into_response()
    })
}

#[utoipa::path(post, path = "/translate", request_body = TranslateRequest,
    responses((status = 200, body = Vec<TranslationText>), (status = 422, body = ErrorBody)))]
async fn translate(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<TranslateRequest>,
) -> Result<Json<Vec<TranslationText>>, ApiError> {
    let texts = req.inputs.into_vec();
    let _permit = s.admit("/translate", &texts)?;
    let m = s.pick(req.model.as_deref(), Cap::Translate, "/translate")?;
    let work = Work::Translate {
        texts,
        src: req.src,
        tgt: req.tgt,
    };
    match m.call(work).await? {
        Reply::Texts(t) => Ok(Json(
            t.into_iter()
                .map(|translation_text| TranslationText { translation_text })
                .collect(),
        )),
        _ => Err(unexpected()),
    }
}

#[utoipa::path(post, path = "/summarize", request_body = SummarizeRequest,
    responses((status = 200, body = Vec<SummaryText>), (status = 422, body = ErrorBody)))]
async fn summarize(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<SummarizeRequest>,
) -> Result<Json<Vec<SummaryText>>, ApiError> {
    let texts = req.inputs.into_vec();
    let _permit = s.admit("/summarize", &texts)?;
    let m = s.pick(req.model.as_deref(), Cap::Summarize, "/summarize")?;
    match m.call(Work::Summarize { texts }).await? {
        Reply::Texts(t) => Ok(Json(
            t.into_iter()
                .map(|summary_text| SummaryText { summary_text })
                .collect(),
        )),
        _ => Err(unexpected()),
    }
}

#[utoipa::path(post, path = "/v1/embeddings", request_body = OpenAiEmbeddingsRequest,
    responses((status = 200, body = OpenAiEmbeddingsResponse), (status = 422, body = ErrorBody)))]
async fn openai_embeddings(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<OpenAiEmbeddingsRequest>,
) -> Result<Json<OpenAiEmbeddingsResponse>, ApiError> {
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "encoding_format {other:?}: use \"float\" or \"base64\""
            )))
        }
    };
    let texts = req.input.into_vec();
    let _permit = s.admit("/v1/embeddings", &texts)?;
    let m = s.pick(req.model.as_deref(), Cap::Embed, "/v1/embeddings")?;
    let work = Work::Embed {
        texts,
        normalize: true,
        truncate: false,
        prompt_name: None,
        pooled: true,
    };
    let Reply::Vectors(v, tokens) = m.call(work).await? else {
        return Err(unexpected());
    };
    if let Some(d) = req.dimensions {
        let have = v.first().map_or(0, |r| r.len());
        if d != have {
            return Err(ApiError::validation(format!(
                "dimensions {d}: this model's embeddings have {have} (it cannot shorten them)"
            )));
        }
    }
    let data = v
        .into_iter()
        .enumerate()
        .map(|(index, e)| OpenAiEmbedding {
            object: "embedding",
            embedding: if base64 {
                let bytes: Vec<u8> = e.iter().flat_map(|x| x.to_le_bytes()).collect();
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                serde_json::json!(e)
            },
            index,
        })
        .collect();
    Ok(Json(OpenAiEmbeddingsResponse {
        object: "list",
        data,
        model: m.id.clone(),
        usage: Usage {
            prompt_tokens: tokens,
            completion_tokens: None,
            total_tokens: tokens,
        },
    }))
}

/// The generation settings of an OpenAI request, checked.
fn generation_config(
    max_tokens: Option<usize>,
    default_max: usize,
    s: &Sampling,
) -> Result<GenerationConfig, ApiError> {
    if s.n.is_some_and(|n| n != 1) {
        return Err(ApiError::validation(
            "n: this server makes one choice per request (n = 1)",
        ));
    }
    let temperature = s.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::validation(format!(
            "temperature {temperature}: use a value from 0 (greedy) to 2"
        )));
    }
    if let Some(p) = s.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::validation(format!(
                "top_p {p}: use a value in (0, 1]"
            )));
        }
    }
    let max_new_tokens = max_tokens.unwrap_or(default_max);
    if max_new_tokens == 0 {
        return Err(ApiError::validation(
            "max_tokens is 0: ask for at least one token",
        ));
    }
    let stop = match &s.stop {
        None => vec![],
        Some(Stop::One(x)) => vec![x.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stop.len() > 16 {
        return Err(ApiError::validation("stop: at most 16 sequences"));
    }
    Ok(GenerationConfig {
        max_new_tokens,
        temperature,
        top_k: None,
        top_p: s.top_p.filter(|p| *p < 1.0),
        repetition_penalty: 1.0,
        seed: s.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        }),
        stop,
        cancel: Some(Arc::new(AtomicBool::new(false))),
    })
}

/// OpenAI's finish reasons.
fn finish_reason(lmkit: &str) -> String {
    match lmkit {
        "max_new_tokens" => "length",
        "cancelled" => "cancelled",
        _ => "stop",
    }
    .to_string()
}

/// Runs a generation; `chunk` turns a piece of text (or, at the end, the finish reason) into
/// an SSE payload.
struct Generation {
    model: Arc<ModelHandle>,
    permit: OwnedSemaphorePermit,
    prompt: Prompt,
    cfg: GenerationConfig,
}

impl Generation {
    /// The whole answer at once.
    async fn complete(self) -> Result<lmkit::generation::sampling::Generated, ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let out = self
            .model
            .call(Work::Generate {
                prompt: self.prompt,
                cfg: self.cfg,
                events: tx,
            })
            .await;
        // Held to here: a dropped receiver tells the worker that nobody listens any more.
        drop(rx);
        drop(self.permit);
        match out? {
            Reply::Generated(g) => Ok(g),
            _ => Err(unexpected()),
        }
    }

    /// Server-sent events: `chunk(Some(piece))` per piece, `chunk(None)` at the end with the
    /// finish reason, then `[DONE]`. A client that disconnects stops the generation.
    fn stream(
        self,
        chunk: impl Fn(Option<&str>, Option<String>) -> serde_json::Value + Send + 'static,
    ) -> Response {
        let (tx, mut pieces) = mpsc::unbounded_channel::<String>();
        let (out_tx, out_rx) = mpsc::channel::<Result<Event, Infallible>>(64);
        let Generation {
            model,
            permit,
            prompt,
            cfg,
        } = self;
        tokio::spawn(async move {
            let _permit = permit;
            let work = Work::Generate {
                prompt,
                cfg,
                events: tx,
            };
            let call = tokio::spawn(async move { model.call(work).await });
            let send = |v: serde_json::Value| Event::default().data(v.to_string());
            if out_tx.send(Ok(send(chunk(Some(""), None)))).await.is_err() {
                return;
            }
            while let Some(p) = pieces.recv().await {
                if out_tx.send(Ok(send(chunk(Some(&p), None)))).await.is_err() {
                    // The client is gone: dropping `pieces` makes the worker stop.
                    return;
                }
            }
            let last = match call.await {
                Ok(Ok(Reply::Generated(g))) => chunk(None, Some(finish_reason(&g.finish_reason))),
                Ok(Err(e)) => {
                    serde_json::json!({"error": {"message": e.message, "type": crate::error::error_type(e.status)}})
                }
                _ => {
                    serde_json::json!({"error": {"message": "generation failed", "type": "backend"}})
                }
            };
            let _ = out_tx.send(Ok(send(last))).await;
            let _ = out_tx.send(Ok(Event::default().data("[DONE]"))).await;
        });
        Sse::new(tokio_stream::wrappers::ReceiverStream::new(out_rx)).into_response()
    }
}

#[utoipa::path(post, path = "/v1/chat/completions", request_body = ChatRequest,
    responses((status = 200, description = "a chat.completion, or with stream: true server-sent chat.completion.chunk events then [DONE]", body = ChatResponse),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn chat_completions(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::validation(
            "`messages` is empty: give at least one message",
        ));
    }
    let messages = req
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| m.to_chat(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::validation)?;
    if let Some(i) = messages.iter().position(|m| m.content.trim().is_empty()) {
        return Err(ApiError::validation(format!(
            "messages[{i}].content is empty"
        )));
    }
    let cfg = generation_config(
        req.max_completion_tokens.or(req.max_tokens),
        256,
        &req.sampling,
    )?;
    let permit = s.permit("/v1/chat/completions", 1)?;
    let model = s.pick(req.model.as_deref(), Cap::Generate, "/v1/chat/completions")?;
    let (id, created, name) = (completion_id("chatcmpl"), now(), model.id.clone());
    let g = Generation {
        model,
        permit,
        prompt: Prompt::Chat(messages),
        cfg,
    };
    if req.sampling.stream {
        return Ok(g.stream(move |piece, finish| {
            let delta = match (piece, &finish) {
                (Some(""), None) => serde_json::json!({"role": "assistant", "content": ""}),
                (Some(p), None) => serde_json::json!({"content": p}),
                _ => serde_json::json!({}),
            };
            serde_json::json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            })
        }));
    }
    let out = g.complete().await?;
    Ok(Json(ChatResponse {
        id,
        object: "chat.completion",
        created,
        model: name,
        choices: vec![ChatChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: out.text,
            },
            finish_reason: finish_reason(&out.finish_reason),
        }],
        usage: Usage {
            prompt_tokens: out.prompt_tokens,
            completion_tokens: Some(out.new_tokens),
            total_tokens: out.prompt_tokens + out.new_tokens,
        },
    })
    .into_response())
}

#[utoipa::path(post, path = "/v1/completions", request_body = CompletionRequest,
    responses((status = 200, description = "a text_completion, or with stream: true server-sent events then [DONE]", body = CompletionResponse),
              (status = 422, body = ErrorBody)))]
async fn completions(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let prompts = req.prompt.into_vec();
    if prompts.len() != 1 {
        return Err(ApiError::validation(format!(
            "`prompt` holds {} prompts: this server takes one per request",
            prompts.len()
        )));
    }
    let prompt = prompts.into_iter().next().unwrap_or_default();
    if prompt.trim().is_empty() {
        return Err(ApiError::validation("`prompt` is empty"));
    }
    // OpenAI's default for completions is 16 tokens.
    let cfg = generation_config(req.max_tokens, 16, &req.sampling)?;
    let permit = s.permit("/v1/completions", 1)?;
    let model = s.pick(req.model.as_deref(), Cap::Generate, "/v1/completions")?;
    let (id, created, name) = (completion_id("cmpl"), now(), model.id.clone());
    let g = Generation {
        model,
        permit,
        prompt: Prompt::Text(prompt),
        cfg,
    };
    if req.sampling.stream {
        return Ok(g.stream(move |piece, finish| {
            serde_json::json!({
                "id": id, "object": "text_completion", "created": created, "model": name,
                "choices": [{"index": 0, "text": piece.unwrap_or(""), "logprobs": null, "finish_reason": finish}],
            })
        }));
    }
    let out = g.complete().await?;
    Ok(Json(CompletionResponse {
        id,
        object: "text_completion",
        created,
        model: name,
        choices: vec![CompletionChoice {
            index: 0,
            text: out.text,
            logprobs: None,
            finish_reason: finish_reason(&out.finish_reason),
        }],
        usage: Usage {
            prompt_tokens: out.prompt_tokens,
            completion_tokens: Some(out.new_tokens),
            total_tokens: out.prompt_tokens + out.new_tokens,
        },
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/models", responses((status = 200, body = ModelList)))]
async fn list_models(State(s): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: s
            .models
            .iter()
            .filter(|m| matches!(m.state(), ModelState::Ready(_)))
            .map(|m| ModelCard {
                id: m.id.clone(),
                object: "model",
                created: 0,
                owned_by: "lmkit",
            })
            .collect(),
    })
}

#[utoipa::path(get, path = "/health",
    responses((status = 200, description = "every model is loaded"), (status = 503, body = ErrorBody)))]
async fn health(State(s): State<AppState>) -> Response {
    let mut waiting = vec![];
    for m in s.models.iter() {
        match m.state() {
            ModelState::Ready(_) => {}
            ModelState::Loading => waiting.push(format!("{} is loading", m.id)),
            ModelState::Failed(e) => waiting.push(format!("{} failed: {e}", m.id)),
        }
    }
    if waiting.is_empty() {
        Json(serde_json::json!({"status": "ok"})).into_response()
    } else {
        ApiError::unavailable(waiting.join("; ")).into_response()
    }
}

#[utoipa::path(get, path = "/info", responses((status = 200, description = "TEI's info fields, plus every model")))]
async fn info(State(s): State<AppState>) -> Json<serde_json::Value> {
    let models: Vec<serde_json::Value> = s
        .models
        .iter()
        .map(|m| match m.state() {
            ModelState::Ready(i) => serde_json::json!({"status": "ready", "info": *i}),
            ModelState::Loading => serde_json::json!({"id": m.id, "status": "loading"}),
            ModelState::Failed(e) => {
                serde_json::json!({"id": m.id, "status": "failed", "error": e})
            }
        })
        .collect();
    let first = s.models.first().and_then(|m| match m.state() {
        ModelState::Ready(i) => Some(i),
        _ => None,
    });
    let c = &s.cfg;
    Json(serde_json::json!({
        "model_id": s.models.first().map(|m| m.id.clone()),
        "model_dtype": match c.precision {
            lmkit::nn::Precision::Int8 => "int8",
            lmkit::nn::Precision::Bf16 => "bfloat16",
            lmkit::nn::Precision::Fp32 => "float32",
        },
        "model_type": first.as_ref().map(|i| i.kind),
        "max_input_length": first.as_ref().map(|i| i.max_input_length),
        "max_concurrent_requests": c.max_concurrent_requests,
        "max_batch_tokens": c.max_batch_tokens,
        "max_client_batch_size": c.max_client_batch_size,
        "auto_truncate": c.auto_truncate,
        "payload_limit": c.payload_limit,
        "version": env!("CARGO_PKG_VERSION"),
        "isa": lmkit::nn::kernels::isa::features().name(),
        "models": models,
    }))
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn prometheus(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lmkit serve",
        description = "TEI- and OpenAI-compatible routes over lmkit's pipelines"
    ),
    paths(
        embed,
        embed_all,
        similarity,
        predict,
        tokenize,
        decode,
        zero_shot,
        translate,
        summarize,
        openai_embeddings,
        chat_completions,
        completions,
        list_models,
        health,
        info,
        prometheus
    )
)]
struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {}: see GET /openapi.json for the routes",
            uri.path()
        ),
    )
}
