//! Every error leaves the server as TEI's JSON body, `{error, error_type}`, with the status a
//! client can act on: 401 key, 413 too large, 422 invalid, 429 retry later, 503 not ready.

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::api::ErrorBody;

#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    /// 422: the request is well-formed HTTP but its content cannot be served.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// A library error: lmkit's input checks say what is wrong with the input, so they are
    /// the client's to fix (422); anything else is the server's (500).
    pub fn from_lmkit(e: &anyhow::Error) -> Self {
        let text = format!("{e:#}");
        let client = [
            "empty",
            "no input",
            "candidate label",
            "hypothesis template",
            "no prompt named",
            "language",
            "max_new_tokens",
            "conversation",
            "out of range",
            "unknown",
            "source and target",
        ];
        if client.iter().any(|w| text.contains(w)) {
            Self::validation(text)
        } else {
            Self::internal(text)
        }
    }
}

/// TEI's `error_type` for a status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 | 415 | 422 => "validation",
        401 | 403 => "unauthorized",
        404 | 405 => "not_found",
        408 | 504 => "timeout",
        429 => "overloaded",
        503 => "unhealthy",
        _ => "backend",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            error_type: error_type(self.status).into(),
        };
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// `Json<T>` whose rejections (bad syntax, a wrong field, a missing content type) are 422
/// with the JSON error body, instead of axum's plain-text 400/415/422.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(JsonRejection::BytesRejection(e)) => {
                // The body limit's rejection: keep its status (413).
                Err(ApiError::new(e.status(), e.body_text()))
            }
            Err(e) => Err(ApiError::validation(e.body_text())),
        }
    }
}

/// Gives the responses that come from layers rather than handlers (404 from the router, 405,
/// 408 from the timeout, 413 from the body limit) the same JSON body as every other error.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_lowercase()
            .to_string()
    } else {
        text
    };
    let mut out = ApiError::new(status, message).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// Rejects any request but `/health` without `Authorization: Bearer <key>` when a key is set.
pub async fn require_key(
    key: Option<std::sync::Arc<str>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let Some(key) = key else {
        return next.run(req).await;
    };
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), key.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong API key").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this server needs an API key: send `Authorization: Bearer <key>`",
        )
        .into_response(),
    }
}

/// Compares without an early exit, so response times do not reveal how much of a key matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
