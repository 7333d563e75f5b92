//! An OpenAI-compatible endpoint serving a student: `POST /v1/chat/completions`
//! (non-streaming), `GET /v1/models`. The answer is a sampled continuation of the last user
//! message; `max_tokens` counts word-level tokens.

use crate::generate::{generate, SampleOptions};
use crate::model::Student;
use crate::vocab::Vocab;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Largest `max_tokens` a request may ask for.
const MAX_TOKENS_LIMIT: usize = 4096;

/// What the server needs: the model, its vocabulary and default sampling options.
pub struct ServeState {
    /// The model.
    pub model: Student,
    /// Its vocabulary.
    pub vocab: Vocab,
    /// Model name reported in responses and `/v1/models`.
    pub name: String,
    /// Defaults for requests that do not set `temperature` / `max_tokens` / `seed`.
    pub defaults: SampleOptions,
    /// Bounds concurrent generations (each one already uses candle's CPU threads).
    pub permits: Semaphore,
    /// Request counter (varies the default seed per request).
    pub counter: AtomicU64,
}

impl ServeState {
    /// New state allowing `concurrency` generations at a time.
    pub fn new(
        model: Student,
        vocab: Vocab,
        name: String,
        defaults: SampleOptions,
        concurrency: usize,
    ) -> Self {
        Self {
            model,
            vocab,
            name,
            defaults,
            permits: Semaphore::new(concurrency.max(1)),
            counter: AtomicU64::new(0),
        }
    }
}

/// The router.
pub fn router(state: Arc<ServeState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .with_state(state)
}

/// An error answered in the OpenAI error format.
struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = if self.status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        let body = json!({"error": {
            "message": self.message,
            "type": kind,
            "param": self.param,
            "code": null,
        }});
        (self.status, Json(body)).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>, param: Option<&'static str>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        param,
    }
}

async fn models(State(s): State<Arc<ServeState>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [
        {"id": s.name, "object": "model", "created": 0, "owned_by": "moat-student"}
    ]}))
}

/// Text of the last user message (string content or an array of text parts).
fn last_user_text(body: &Value) -> Result<String, ApiError> {
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, m, Some("messages"));
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("'messages' must be a non-empty array"))?;
    let msg = msgs
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .ok_or_else(|| bad("'messages' has no user message"))?;
    match msg.get("content") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")),
        _ => Err(bad(
            "user message content must be a string or an array of parts",
        )),
    }
}

fn options(s: &ServeState, body: &Value) -> Result<SampleOptions, ApiError> {
    let mut o = s.defaults;
    o.seed = o
        .seed
        .wrapping_add(s.counter.fetch_add(1, Ordering::Relaxed));
    if let Some(t) = body.get("temperature").filter(|v| !v.is_null()) {
        match t.as_f64() {
            Some(t) if (0.0..=2.0).contains(&t) => o.temperature = t,
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "'temperature' must be a number between 0 and 2",
                    Some("temperature"),
                ))
            }
        }
    }
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            match v.as_u64() {
                Some(n) if n >= 1 && n as usize <= MAX_TOKENS_LIMIT => o.max_tokens = n as usize,
                _ => {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        format!("'{key}' must be an integer between 1 and {MAX_TOKENS_LIMIT}"),
                        Some(key),
                    ))
                }
            }
            break;
        }
    }
    if let Some(seed) = body.get("seed").and_then(Value::as_u64) {
        o.seed = seed;
    }
    Ok(o)
}

async fn chat(State(s): State<Arc<ServeState>>, body: axum::body::Bytes) -> Response {
    match chat_inner(s, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_inner(s: Arc<ServeState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let msg = "request body must be a JSON object";
            return Err(error(StatusCode::BAD_REQUEST, msg, None));
        }
    };
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let msg = "streaming is not supported by this server";
        return Err(error(StatusCode::BAD_REQUEST, msg, Some("stream")));
    }
    let prompt = last_user_text(&body)?;
    let o = options(&s, &body)?;
    let Ok(_permit) = s.permits.acquire().await else {
        let msg = "server shutting down";
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, msg, None));
    };
    let st = s.clone();
    let prompt_for_gen = prompt.clone();
    let res =
        tokio::task::spawn_blocking(move || generate(&st.model, &st.vocab, &prompt_for_gen, &o))
            .await;
    let g = match res {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "generation failed");
            let msg = "generation failed";
            return Err(error(StatusCode::INTERNAL_SERVER_ERROR, msg, None));
        }
        Err(_) => {
            let msg = "generation failed";
            return Err(error(StatusCode::INTERNAL_SERVER_ERROR, msg, None));
        }
    };
    let n = s.counter.load(Ordering::Relaxed);
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let prompt_tokens = s.vocab.encode(&prompt).len();
    Ok(Json(json!({
        "id": format!("chatcmpl-student-{n}"),
        "object": "chat.completion",
        "created": created,
        "model": s.name,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": g.text},
            "logprobs": null,
            "finish_reason": if g.stopped { "stop" } else { "length" },
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": g.tokens,
            "total_tokens": prompt_tokens + g.tokens,
        },
    }))
    .into_response())
}
